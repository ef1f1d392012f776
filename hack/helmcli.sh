#!/usr/bin/env bash
# Builds the helm v4 CLI from the Go module proxy (checksums verified,
# nothing prebuilt is downloaded) into $OUTPOST_CACHE/bin/helm-<version>, for
# side-by-side benchmarks (bench/helm). A binary already there and runnable
# is kept, so only the first run on a machine pays for the build (a few
# minutes). Prints the binary's path on its last line.
#
#   hack/helmcli.sh           build if missing, print the path
#   hack/helmcli.sh --path    print the path only
set -euo pipefail

# The version the Helm executor is built on (go.mod: helm.sh/helm/v4).
HELM_VERSION=v4.3.1
CACHE=${OUTPOST_CACHE:-$HOME/.cache/outpost}
out="$CACHE/bin/helm-$HELM_VERSION"
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

runs() { [ -x "$1" ] && "$1" version --short 2>/dev/null | grep -qx "$HELM_VERSION.*"; }

if ! runs "$out"; then
  echo "helmcli: building helm $HELM_VERSION from the module proxy (first time on this machine: a few minutes)" >&2
  mkdir -p "$CACHE/bin"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  # go install pkg@version builds in module mode with helm's own go.mod,
  # as a user's `go install` would. The version ldflag is what helm's own
  # Makefile sets, so `helm version` reports HELM_VERSION.
  GOBIN="$work" CGO_ENABLED=0 GOFLAGS= go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  mv "$work/helm" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$work"
  trap - EXIT
  runs "$out" || {
    echo "helmcli: $out does not report $HELM_VERSION" >&2
    exit 1
  }
fi

echo "$out"
