package helm

import (
	"slices"
	"strings"

	"helm.sh/helm/v4/pkg/kube"
	release "helm.sh/helm/v4/pkg/release/v1"
)

// Outcomes of one object.
const (
	OutcomeCreated    = "created"
	OutcomeConfigured = "configured"
	OutcomeDeleted    = "deleted"
	// OutcomePresent and OutcomeMissing describe objects in a status
	// report.
	OutcomePresent = "present"
	OutcomeMissing = "missing"
)

// MaxResultObjects caps the per-object entries of a result.
const MaxResultObjects = 2000

// maxNotesBytes caps the chart's notes in a result.
const maxNotesBytes = 16 << 10

// Result is the JSON document a helm task reports.
type Result struct {
	Release    string `json:"release"`
	Namespace  string `json:"namespace"`
	Action     string `json:"action"`
	Revision   int    `json:"revision"`
	Status     string `json:"status"`
	Chart      string `json:"chart,omitempty"`
	AppVersion string `json:"app_version,omitempty"`
	// Source says where the chart came from (inline, an artifact, or a
	// repository and version).
	Source      string `json:"source,omitempty"`
	Description string `json:"description,omitempty"`
	Notes       string `json:"notes,omitempty"`
	// Unchanged is set when an earlier attempt of the same task had done
	// the work and this one only reports it.
	Unchanged bool `json:"unchanged,omitempty"`
	// DryRun counts the objects dry-run server-side before the first
	// write.
	DryRun  int            `json:"dry_run_objects,omitempty"`
	Objects []ObjectResult `json:"objects"`
	// ObjectsOmitted counts entries left out past MaxResultObjects.
	ObjectsOmitted int `json:"objects_omitted,omitempty"`
	// History lists the revisions, newest first (history action).
	History []Revision `json:"history,omitempty"`
}

// ObjectResult is one object of the release and what happened to it.
type ObjectResult struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Outcome   string `json:"outcome"`
}

// Revision is one entry of a release's history.
type Revision struct {
	Revision    int    `json:"revision"`
	Status      string `json:"status"`
	Chart       string `json:"chart"`
	AppVersion  string `json:"app_version,omitempty"`
	Updated     string `json:"updated,omitempty"`
	Description string `json:"description,omitempty"`
}

// newResult fills a result from a release record.
func newResult(action string, rel *release.Release) *Result {
	res := &Result{Release: rel.Name, Namespace: rel.Namespace, Action: action, Revision: rel.Version, Objects: []ObjectResult{}}
	if rel.Info != nil {
		res.Status = rel.Info.Status.String()
		res.Description = rel.Info.Description
		res.Notes = rel.Info.Notes
		if len(res.Notes) > maxNotesBytes {
			res.Notes = res.Notes[:maxNotesBytes] + "\n[notes truncated]"
		}
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		res.Chart = rel.Chart.Metadata.Name + "-" + rel.Chart.Metadata.Version
		res.AppVersion = rel.Chart.Metadata.AppVersion
	}
	return res
}

// addTracked records the outcome of every resource Helm created, updated
// or deleted, sorted by kind, namespace and name.
func (res *Result) addTracked(t *tracker) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for _, group := range []struct {
		list    kube.ResourceList
		outcome string
	}{{t.created, OutcomeCreated}, {t.updated, OutcomeConfigured}, {t.deleted, OutcomeDeleted}} {
		for _, info := range group.list {
			gvk := info.Mapping.GroupVersionKind
			key := gvk.Group + "/" + gvk.Kind + "/" + info.Namespace + "/" + info.Name
			if seen[key] {
				continue
			}
			seen[key] = true
			res.add(ObjectResult{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: info.Namespace, Name: info.Name, Outcome: group.outcome})
		}
	}
	res.sort()
}

func (res *Result) add(o ObjectResult) {
	if len(res.Objects) >= MaxResultObjects {
		res.ObjectsOmitted++
		return
	}
	res.Objects = append(res.Objects, o)
}

func (res *Result) sort() {
	slices.SortFunc(res.Objects, func(a, b ObjectResult) int {
		return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
	})
}
