package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// Default bounds.
const (
	// DefaultMaxBytes caps a whole bundle.
	DefaultMaxBytes = 32 << 20
	// DefaultMaxObjects caps the number of objects in a bundle.
	DefaultMaxObjects = 5000
	// DefaultMaxObjectBytes caps one object encoded as JSON: etcd refuses
	// values above 1.5 MiB, so anything larger cannot be stored anyway.
	DefaultMaxObjectBytes = 3 << 19
	// maxNameLength is the longest object name the API server takes.
	maxNameLength = 253
)

// ErrInvalid is wrapped by every error Decode returns for a bundle that is
// malformed or over a bound.
var ErrInvalid = errors.New("invalid bundle")

// Limits bounds a bundle. Zero fields take the defaults.
type Limits struct {
	MaxBytes       int64
	MaxObjects     int
	MaxObjectBytes int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxObjects <= 0 {
		l.MaxObjects = DefaultMaxObjects
	}
	if l.MaxObjectBytes <= 0 {
		l.MaxObjectBytes = DefaultMaxObjectBytes
	}
	return l
}

// Object is one object of a bundle and where it came from.
type Object struct {
	// Doc is the 1-based index of the YAML document or JSON value.
	Doc int
	// Item is the 1-based index inside a List, 0 when the object is not
	// a List item.
	Item int
	// Obj is the decoded object.
	Obj *unstructured.Unstructured
}

// Position describes where the object is, for error messages:
// "document 3" or "document 3 item 2".
func (o Object) Position() string {
	if o.Item > 0 {
		return fmt.Sprintf("document %d item %d", o.Doc, o.Item)
	}
	return fmt.Sprintf("document %d", o.Doc)
}

// String names the object as "Kind namespace/name (document N)".
func (o Object) String() string {
	name := o.Obj.GetName()
	if ns := o.Obj.GetNamespace(); ns != "" {
		name = ns + "/" + name
	}
	return fmt.Sprintf("%s %s (%s)", o.Obj.GetKind(), name, o.Position())
}

// Decode decodes data into objects in bundle order. Empty documents are
// skipped; Lists are flattened. It fails, wrapping ErrInvalid, on the first
// malformed document or object, or when a bound is exceeded.
func Decode(data []byte, lim Limits) ([]Object, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, larger than the %d the agent accepts; split the release", ErrInvalid, len(data), lim.MaxBytes)
	}
	d := decoder{lim: lim, seen: map[string]string{}}
	trimmed := bytes.TrimLeftFunc(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), unicode.IsSpace)
	var err error
	// A stream of JSON values holds no "---" separator line; YAML
	// documents may each be written as JSON.
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && !hasSeparator(data) {
		err = d.jsonStream(trimmed)
	} else {
		err = d.yamlStream(data)
	}
	if err != nil {
		return nil, err
	}
	return d.out, nil
}

type decoder struct {
	lim  Limits
	out  []Object
	seen map[string]string
}

func (d *decoder) jsonStream(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: document %d: malformed JSON: %w", ErrInvalid, doc, err)
		}
		if err := d.document(doc, raw); err != nil {
			return err
		}
	}
}

func (d *decoder) yamlStream(data []byte) error {
	for doc, text := range splitYAML(data) {
		// Bound the document before the YAML parser expands it.
		if len(text) > 2*d.lim.MaxObjectBytes {
			return fmt.Errorf("%w: document %d: %d bytes, larger than the %d a document may be", ErrInvalid, doc, len(text), 2*d.lim.MaxObjectBytes)
		}
		raw, err := yaml.YAMLToJSON(text)
		if err != nil {
			return fmt.Errorf("%w: document %d: malformed YAML: %w", ErrInvalid, doc, err)
		}
		if err := d.document(doc, raw); err != nil {
			return err
		}
	}
	return nil
}

// splitYAML yields the documents of a YAML stream with their 1-based
// index, as a reader counts them: every "---" line starts a document, and
// text before the first one is document 1 unless it is blank. Whatever
// follows "---" on its line belongs to the document ("--- {a: 1}").
func splitYAML(data []byte) iter.Seq2[int, []byte] {
	return func(yield func(int, []byte) bool) {
		doc, start := 0, 0
		emit := func(end int) bool {
			text := data[start:end]
			if doc == 0 && len(bytes.TrimSpace(text)) == 0 {
				return true
			}
			doc++
			return yield(doc, text)
		}
		for pos := 0; pos < len(data); {
			end := bytes.IndexByte(data[pos:], '\n')
			next := len(data)
			if end >= 0 {
				next = pos + end + 1
			}
			line := data[pos:next]
			if isSeparator(line) {
				if !emit(pos) {
					return
				}
				// The rest of the separator line opens the next document.
				start = pos + 3
			}
			pos = next
		}
		emit(len(data))
	}
}

// document decodes one YAML document or JSON value: nothing, an object, a
// List, or (JSON only) an array of objects.
func (d *decoder) document(doc int, raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil
	}
	if raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fmt.Errorf("%w: document %d: %w", ErrInvalid, doc, err)
		}
		for i, item := range items {
			if err := d.object(doc, i+1, item); err != nil {
				return err
			}
		}
		return nil
	}
	if raw[0] != '{' {
		return fmt.Errorf("%w: document %d: want an object with apiVersion and kind, got %s", ErrInvalid, doc, excerpt(raw))
	}
	var head struct {
		Kind  string            `json:"kind"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("%w: document %d: %w", ErrInvalid, doc, err)
	}
	if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		for i, item := range head.Items {
			if err := d.object(doc, i+1, item); err != nil {
				return err
			}
		}
		return nil
	}
	return d.object(doc, 0, raw)
}

func (d *decoder) object(doc, item int, raw []byte) error {
	pos := Object{Doc: doc, Item: item}.Position()
	if len(d.out) >= d.lim.MaxObjects {
		return fmt.Errorf("%w: %s: more than %d objects; split the release", ErrInvalid, pos, d.lim.MaxObjects)
	}
	if len(raw) > d.lim.MaxObjectBytes {
		return fmt.Errorf("%w: %s: object of %d bytes, larger than the %d the API server stores", ErrInvalid, pos, len(raw), d.lim.MaxObjectBytes)
	}
	var m map[string]any
	if err := utiljson.Unmarshal(raw, &m); err != nil || m == nil {
		return fmt.Errorf("%w: %s: want an object with apiVersion and kind, got %s", ErrInvalid, pos, excerpt(raw))
	}
	u := &unstructured.Unstructured{Object: m}
	o := Object{Doc: doc, Item: item, Obj: u}
	if err := check(u); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalid, pos, err)
	}
	key := Key(u)
	if prev, ok := d.seen[key]; ok {
		return fmt.Errorf("%w: %s is given twice, first in %s; remove one", ErrInvalid, o, prev)
	}
	d.seen[key] = pos
	d.out = append(d.out, o)
	return nil
}

// Key identifies an object within a bundle: group, kind, namespace as
// written, and name. Versions of one kind share a key.
func Key(u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	return gvk.Group + "/" + gvk.Kind + "/" + u.GetNamespace() + "/" + u.GetName()
}

// check validates the fields every object needs, before the API server is
// asked anything.
func check(u *unstructured.Unstructured) error {
	apiVersion, ok := u.Object["apiVersion"].(string)
	if !ok || apiVersion == "" {
		return errors.New("apiVersion is missing or not a string")
	}
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil || gv.Version == "" {
		return fmt.Errorf("apiVersion %q: want version or group/version", apiVersion)
	}
	kind, ok := u.Object["kind"].(string)
	if !ok || kind == "" {
		return errors.New("kind is missing or not a string")
	}
	if strings.ContainsFunc(kind, func(r rune) bool { return r >= unicode.MaxASCII || !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		return fmt.Errorf("kind %q: want letters and digits", kind)
	}
	meta, ok := u.Object["metadata"].(map[string]any)
	if !ok {
		return fmt.Errorf("%s: metadata is missing or not an object", kind)
	}
	name, _ := meta["name"].(string)
	if name == "" {
		if _, gen := meta["generateName"]; gen {
			return fmt.Errorf("%s: metadata.generateName is not supported; give metadata.name so the object can be applied again", kind)
		}
		return fmt.Errorf("%s: metadata.name is missing or not a string", kind)
	}
	if msg := nameProblem(name); msg != "" {
		return fmt.Errorf("%s %q: metadata.name %s", kind, name, msg)
	}
	if ns, present := meta["namespace"]; present {
		s, ok := ns.(string)
		if !ok {
			return fmt.Errorf("%s %q: metadata.namespace is not a string", kind, name)
		}
		if s != "" {
			if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
				return fmt.Errorf("%s %q: metadata.namespace %q: %s", kind, name, s, errs[0])
			}
		}
	}
	for _, field := range []string{"labels", "annotations"} {
		if v, present := meta[field]; present && v != nil {
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("%s %q: metadata.%s is not a map", kind, name, field)
			}
			for k, val := range m {
				if _, ok := val.(string); !ok {
					return fmt.Errorf("%s %q: metadata.%s[%q] is not a string", kind, name, field, k)
				}
			}
		}
	}
	return nil
}

// nameProblem says what is wrong with an object name that no resource
// accepts, or "" when it may be valid. Each resource applies stricter rules
// of its own, which the server-side dry-run checks.
func nameProblem(name string) string {
	if len(name) > maxNameLength {
		return fmt.Sprintf("is %d characters long, more than %d", len(name), maxNameLength)
	}
	if name == "." || name == ".." {
		return "may not be '.' or '..'"
	}
	if strings.ContainsAny(name, "/%") {
		return "may not contain '/' or '%'"
	}
	if strings.ContainsFunc(name, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII }) {
		return "may not contain spaces, control or non-ASCII characters"
	}
	return ""
}

// hasSeparator reports whether data holds a YAML document separator line.
func hasSeparator(data []byte) bool {
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if isSeparator(line) {
			return true
		}
	}
	return false
}

// isSeparator reports whether line is "---", alone or followed by
// whitespace and more of the document.
func isSeparator(line []byte) bool {
	return bytes.HasPrefix(line, []byte("---")) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\n' || line[3] == '\r')
}

// excerpt shows the start of a value in an error message.
func excerpt(raw []byte) string {
	const n = 40
	if len(raw) > n {
		return fmt.Sprintf("%q...", raw[:n])
	}
	return fmt.Sprintf("%q", raw)
}
