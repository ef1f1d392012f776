// Package kube finds the Kubernetes cluster the agent runs against: an
// explicit kubeconfig, or the in-cluster service account when the agent runs
// in a pod, and the namespace the agent calls its own. It builds the one
// *rest.Config every Kubernetes client in the agent shares (user agent,
// client-side rate limits). Without either, the agent runs without
// Kubernetes, as on a VM.
package kube
