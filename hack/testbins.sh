#!/usr/bin/env bash
# Builds the real kube-apiserver and etcd that tests run against, from the Go
# module proxy (checksums verified, nothing prebuilt is downloaded), into
# $OUTPOST_CACHE/testbins/<versions>. Binaries already there and runnable are
# kept, so only the first run on a machine pays for the build (~8-15 min).
# Prints the directory (for KUBEBUILDER_ASSETS) on its last line; with --dir
# it prints only that directory and builds nothing. With the argument
# kubectl it also builds kubectl from the same k8s.io/kubernetes module, for
# side-by-side benchmarks (bench/manifests). Versions are pinned in
# hack/testbins.versions.
#
#   hack/testbins.sh            kube-apiserver and etcd
#   hack/testbins.sh kubectl    the same, and kubectl
#   hack/testbins.sh --dir      print the directory only
set -euo pipefail

# shellcheck source=testbins.versions
. "$(dirname "$0")/testbins.versions"
CACHE=${OUTPOST_CACHE:-$HOME/.cache/outpost}
out="$CACHE/testbins/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
with_kubectl=false
case "${1:-}" in
  --dir)
    echo "$out"
    exit 0
    ;;
  kubectl) with_kubectl=true ;;
  "") ;;
  *)
    echo "usage: $0 [kubectl | --dir]" >&2
    exit 2
    ;;
esac
mkdir -p "$out"

runs() { [ -x "$1" ] && "$1" --version >/dev/null 2>&1; }
# kubectl --version is not a flag; kubectl version --client is.
kubectl_runs() { [ -x "$1" ] && "$1" version --client >/dev/null 2>&1; }

staging_version="v0.${K8S_VERSION#v1.}"
minor=$(echo "$K8S_VERSION" | cut -d. -f2)
build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# build_k8s NAME builds k8s.io/kubernetes/cmd/NAME at K8S_VERSION into $out.
# `go install` refuses the module (its go.mod replaces every staging module
# with ./staging/src/...), so a wrapper module replaces each of them with its
# published v0.X.Y version instead, and version ldflags make the binary
# report K8S_VERSION rather than v0.0.0-master.
build_k8s() {
  local name=$1 gomod ld pkg
  # work is global: the EXIT trap removes it if the build fails.
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module outpost.local/testbins/$name"
    echo
    echo "go 1.26.0"
    echo
    grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/src/k8s.io/[a-z0-9-]+' "$gomod" |
      awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
  } >"$work/go.mod"
  ld="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
  done
  (
    cd "$work"
    GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/$name@$K8S_VERSION" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="$ld" -o "$out/$name.tmp" "k8s.io/kubernetes/cmd/$name"
  )
  mv "$out/$name.tmp" "$out/$name"
  rm -rf "$work"
  trap - EXIT
}

if ! runs "$out/kube-apiserver"; then
  echo "testbins: building kube-apiserver $K8S_VERSION (first time on this machine: several minutes)" >&2
  build_k8s kube-apiserver
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

if $with_kubectl && ! kubectl_runs "$out/kubectl"; then
  echo "testbins: building kubectl $K8S_VERSION (a few minutes)" >&2
  build_k8s kubectl
fi

echo "$out"
