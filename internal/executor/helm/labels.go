package helm

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Labels and annotations the executor handles.
const (
	// LabelRelease carries the Helm release name on every object a helm
	// task writes (the same label the manifests executor uses).
	LabelRelease = "outpost.dev/release"
	// Helm's own ownership annotations; a chart may not set them, or it
	// could claim objects of another release.
	annotationReleaseName      = "meta.helm.sh/release-name"
	annotationReleaseNamespace = "meta.helm.sh/release-namespace"
)

// labelObject adds LabelRelease to obj. It is applied to the objects Helm
// builds before it writes them (see tracker.Build) rather than through a
// post-renderer, which would make Helm re-serialise every rendered
// template twice.
func labelObject(obj any, release string) {
	acc, err := meta.Accessor(obj)
	if err != nil {
		return
	}
	labels := acc.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelRelease] = release
	acc.SetLabels(labels)
}

// claimsOwnership reports a rendered object that sets Helm's ownership
// annotations itself.
func claimsOwnership(u *unstructured.Unstructured) error {
	ann := u.GetAnnotations()
	for _, k := range []string{annotationReleaseName, annotationReleaseNamespace} {
		if _, set := ann[k]; set {
			return fmt.Errorf("%w: %s %s sets the annotation %s, which only Helm may set", ErrInvalidChart, u.GetKind(), u.GetName(), k)
		}
	}
	return nil
}
