#!/usr/bin/env bash
# Runs every Fuzz target of the module for $FUZZTIME each (default 3s).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-3s}
count=0
while IFS= read -r file; do
  dir=$(dirname "$file")
  for fn in $(grep -oE '^func (Fuzz[A-Za-z0-9_]+)' "$file" | awk '{print $2}'); do
    echo "fuzz: ./$dir $fn ($fuzztime)"
    go test -run='^$' -fuzz="^${fn}\$" -fuzztime="$fuzztime" "./$dir" >/tmp/outpost-fuzz.log 2>&1 || { cat /tmp/outpost-fuzz.log; exit 1; }
    count=$((count + 1))
  done
done < <(grep -rlE '^func Fuzz' --include='*_test.go' . | sed 's#^\./##' | sort)
echo "fuzz: $count targets passed"
