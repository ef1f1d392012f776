// Package hub tests the outpost-hub Helm chart in deploy/charts/outpost-hub:
// it lints and renders in both database modes and with each optional
// feature (golden files in testdata, refreshed with -update), its values
// schema refuses bad values, the hub pod meets the Pod Security
// "restricted" profile, the PostgreSQL connection string never appears in
// a manifest, and the chart installs through the Helm SDK into a real
// kube-apiserver (one per package, started on first use), the kinds of
// cert-manager, the Gateway API, Prometheus Operator and Istio served by
// minimal CRDs.
package hub
