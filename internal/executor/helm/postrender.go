package helm

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/outposthq/outpost/internal/archive"
)

// Labels and annotations the post-renderer handles.
const (
	// LabelRelease carries the Helm release name on every object a helm
	// task writes (the same label the manifests executor uses).
	LabelRelease = "outpost.dev/release"
	// Helm's own ownership annotations; a chart may not set them, or it
	// could claim objects of another release.
	annotationReleaseName      = "meta.helm.sh/release-name"
	annotationReleaseNamespace = "meta.helm.sh/release-namespace"
)

// documentSeparator splits a YAML stream at "---" lines.
var documentSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// labeler is the post-renderer every action runs: it checks the rendered
// stream for alias bombs, refuses objects that set Helm's ownership
// annotations themselves, and adds LabelRelease to every object (and to
// the items of a List).
type labeler struct {
	release string
	limits  archive.YAMLLimits
}

func (l *labeler) Run(rendered *bytes.Buffer) (*bytes.Buffer, error) {
	if err := archive.CheckYAML("rendered manifests", rendered.Bytes(), l.limits); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, doc := range documentSeparator.Split(rendered.String(), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			return nil, fmt.Errorf("rendered manifests: %w", err)
		}
		if obj == nil {
			continue
		}
		if err := l.label(obj); err != nil {
			return nil, err
		}
		if items, ok := obj["items"].([]any); ok && strings.HasSuffix(fmt.Sprint(obj["kind"]), "List") {
			for _, it := range items {
				if m, ok := it.(map[string]any); ok {
					if err := l.label(m); err != nil {
						return nil, err
					}
				}
			}
		}
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("rendered manifests: %w", err)
		}
		out.WriteString("---\n")
		out.Write(b)
	}
	return &out, nil
}

func (l *labeler) label(obj map[string]any) error {
	md, _ := obj["metadata"].(map[string]any)
	if md == nil {
		md = map[string]any{}
		obj["metadata"] = md
	}
	if ann, ok := md["annotations"].(map[string]any); ok {
		for _, k := range []string{annotationReleaseName, annotationReleaseNamespace} {
			if _, set := ann[k]; set {
				return fmt.Errorf("%s %v sets the annotation %s, which only Helm may set", obj["kind"], md["name"], k)
			}
		}
	}
	labels, _ := md["labels"].(map[string]any)
	if labels == nil {
		labels = map[string]any{}
		md["labels"] = labels
	}
	labels[LabelRelease] = l.release
	return nil
}

// stripComments drops comment-only lines, so a document made of Helm's
// "# Source:" line alone counts as empty.
func stripComments(doc string) string {
	var b strings.Builder
	for line := range strings.Lines(doc) {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
		}
	}
	return b.String()
}
