#!/usr/bin/env bash
# Builds the pinned OpenTofu CLI (cmd/tofu) from the Go module proxy
# (checksums verified, nothing prebuilt is downloaded) into
# $OUTPOST_CACHE/bin/tofu-<version>: the binary the terraform executor drives
# through terraform-exec, and the one the agent image bundles. A binary
# already there and runnable is kept, so only the first run on a machine pays
# for the build (about 6 minutes). Prints the binary's path on its last line.
#
#   hack/tofu.sh           build if missing, print the path
#   hack/tofu.sh --path    print the path only
set -euo pipefail

# v1.11.7 fails checksum-database verification here; v1.11.6 verifies.
TOFU_VERSION=v1.11.6
CACHE=${OUTPOST_CACHE:-$HOME/.cache/outpost}
out="$CACHE/bin/tofu-$TOFU_VERSION"
case "${1:-}" in
  --path)
    echo "$out"
    exit 0
    ;;
  "") ;;
  *)
    echo "usage: $0 [--path]" >&2
    exit 2
    ;;
esac

runs() { [ -x "$1" ] && [ "$("$1" version 2>/dev/null | sed -n 1p)" = "OpenTofu ${TOFU_VERSION}" ]; }

if ! runs "$out"; then
  echo "tofu: building OpenTofu $TOFU_VERSION from the module proxy (first time on this machine: about 6 minutes)" >&2
  mkdir -p "$CACHE/bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # `go install ...@version` refuses OpenTofu's module: its go.mod replaces
  # hashicorp/hcl with OpenTofu's fork. A wrapper module repeats its go
  # line, godebug block and that replace, then builds cmd/tofu.
  gomod=$(go mod download -json "github.com/opentofu/opentofu@$TOFU_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module outpost.local/tofu"
    echo
    grep -E '^go [0-9.]+$' "$gomod"
    echo
    awk '/^godebug \(/{p=1} p{print} p&&/^\)/{exit}' "$gomod"
    echo
    grep -E '^replace github.com/hashicorp/hcl/v2 ' "$gomod" || true
  } >"$work/go.mod"
  (
    cd "$work"
    GOFLAGS=-mod=mod go get "github.com/opentofu/opentofu/cmd/tofu@$TOFU_VERSION" >/dev/null 2>&1
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
      -o "$out.tmp" github.com/opentofu/opentofu/cmd/tofu
  )
  mv "$out.tmp" "$out"
  rm -rf "$work"
  trap - EXIT
  runs "$out" || {
    echo "tofu: $out does not report OpenTofu $TOFU_VERSION" >&2
    exit 1
  }
fi

echo "$out"
