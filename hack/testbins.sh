#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that tests run against, from the Go
# module proxy (checksums verified, nothing prebuilt is downloaded), into
# $OUTPOST_CACHE/testbins/<versions>. Binaries already there and runnable are
# kept, so only the first run on a machine pays for the build (~8-15 min).
# Prints the directory (for KUBEBUILDER_ASSETS) on its last line; with --dir
# it prints only that directory and builds nothing. Versions are pinned in
# hack/testbins.versions.
set -euo pipefail

# shellcheck source=testbins.versions
. "$(dirname "$0")/testbins.versions"
CACHE=${OUTPOST_CACHE:-$HOME/.cache/outpost}
out="$CACHE/testbins/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
if [ "${1:-}" = "--dir" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out"

runs() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }

staging_version="v0.${K8S_VERSION#v1.}"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

if ! runs "$out/kube-apiserver"; then
  echo "testbins: building kube-apiserver $K8S_VERSION (first time on this machine: several minutes)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module outpost.local/testbins/kubeapiserver"
    echo
    echo "go 1.26.0"
    echo
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/src/k8s.io/[a-z0-9-]+' "$gomod" |
      awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$work/go.mod"
  (
    cd "$work"
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" >&2
    ld="-s -w"
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
    done
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ld" -o "$out/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
  )
  mv "$out/kube-apiserver.tmp" "$out/kube-apiserver"
  rm -rf "$work"
  trap - EXIT
fi

if ! runs "$out/etcd"; then
  echo "testbins: building etcd $ETCD_VERSION" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  printf 'module outpost.local/testbins/etcd\n\ngo 1.26.0\n' >"$work/go.mod"
  (
    cd "$work"
    GOFLAGS=-mod=mod go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags='-s -w' -o "$out/etcd.tmp" go.etcd.io/etcd/server/v3
  )
  mv "$out/etcd.tmp" "$out/etcd"
  rm -rf "$work"
  trap - EXIT
fi

echo "$out"
