package manifests

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// SetListPaging sets the page size and budget of ex's LISTs.
func SetListPaging(ex *Executor, pageSize, budget int) { ex.listPage, ex.listBudget = pageSize, budget }

// Unchanged is the no-change check on live metadata and a dry-run's
// response, the server's clock having been at least sentAfter (Unix
// seconds) when the dry-run was sent.
func Unchanged(live *metav1.ObjectMeta, dry *unstructured.Unstructured, sentAfter int64) bool {
	return unchanged(newLiveMeta(live), dry, sentAfter)
}

// ListMin is listMin.
const ListMin = listMin
