// Package kubetest starts a real kube-apiserver and etcd (built from source
// by hack/testbins.sh) through controller-runtime's envtest, for tests and
// the demo. There is no kubelet or controller-manager: pods never run, and
// tests write workload status themselves where readiness matters.
package kubetest
