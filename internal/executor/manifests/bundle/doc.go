// Package bundle decodes the untrusted bundle of a manifests task into
// Kubernetes objects, within bounds: total size, object count and size of
// each object. It accepts multi-document YAML, a stream of JSON values, and
// List objects, and checks what can be checked without an API server:
// apiVersion, kind and metadata.name present and well formed, no object
// given twice. Every error names the document (and List item) at fault.
package bundle
