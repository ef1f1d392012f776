package reconcile

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"
)

// leaf is one field of a baseline: where it is and the value the field
// manager set there.
type leaf struct {
	path fieldpath.Path
	// str is path rendered as in ObjectDrift.Fields.
	str   string
	value any
	// presence: only the field's existence counts. Set for empty maps,
	// which a granular struct may fill with fields of other managers.
	presence bool
}

// baseline is what a release's field manager owns in one object, with
// the values it set, from a dry run or apply response.
type baseline struct {
	leaves []leaf
	// ignored lists the owned fields ignore rules take out of comparison;
	// a correction keeps their live values.
	ignored []fieldpath.Path
}

// ownedSet returns the fields manager owns in obj through apply.
func ownedSet(obj *unstructured.Unstructured, manager string) (*fieldpath.Set, error) {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager != manager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(mf.FieldsV1.GetRawReader()); err != nil {
			return nil, fmt.Errorf("%w: managedFields of %s: %w", ErrNoOwnedFields, manager, err)
		}
		return set, nil
	}
	return nil, fmt.Errorf("%w: no apply entry of field manager %s", ErrNoOwnedFields, manager)
}

// newBaseline builds the baseline of applied, an object as a dry run or an
// apply by manager returned it, leaving out the fields ignore matches.
func newBaseline(applied *unstructured.Unstructured, manager string, ignore []IgnoreRule) (*baseline, error) {
	set, err := ownedSet(applied, manager)
	if err != nil {
		return nil, err
	}
	gvk := applied.GroupVersionKind()
	var rules [][]string
	for _, r := range ignore {
		if r.matches(gvk.Group, gvk.Kind) {
			for _, p := range r.Paths {
				rules = append(rules, splitPointer(p))
			}
		}
	}
	b := &baseline{}
	for p := range set.Leaves().All() {
		segs := segments(p)
		if ignored(segs, rules) {
			b.ignored = append(b.ignored, p.Copy())
			continue
		}
		v, ok := lookup(applied.Object, p)
		if !ok {
			// The manager owns a field the object lacks (a value that
			// was defaulted away): nothing to compare.
			continue
		}
		m, isMap := v.(map[string]any)
		b.leaves = append(b.leaves, leaf{path: p.Copy(), str: "/" + strings.Join(segs, "/"), value: v, presence: isMap && len(m) == 0})
	}
	return b, nil
}

// diff returns the fields of b that live lacks or holds with another
// value, sorted. A nil live object is missing every field.
func (b *baseline) diff(live *unstructured.Unstructured) []string {
	var out []string
	for _, l := range b.leaves {
		if live == nil {
			break
		}
		v, ok := lookup(live.Object, l.path)
		if !ok || (!l.presence && !reflect.DeepEqual(v, l.value)) {
			out = append(out, l.str)
		}
	}
	slices.Sort(out)
	return out
}

// lookup returns the value at p in obj.
func lookup(obj any, p fieldpath.Path) (any, bool) {
	cur := obj
	for _, pe := range p {
		next, ok := step(cur, pe)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// step descends one path element.
func step(cur any, pe fieldpath.PathElement) (any, bool) {
	switch {
	case pe.FieldName != nil:
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		v, ok := m[*pe.FieldName]
		return v, ok
	case pe.Index != nil:
		l, ok := cur.([]any)
		if !ok || *pe.Index < 0 || *pe.Index >= len(l) {
			return nil, false
		}
		return l[*pe.Index], true
	default:
		l, ok := cur.([]any)
		if !ok {
			return nil, false
		}
		i := find(l, pe)
		if i < 0 {
			return nil, false
		}
		return l[i], true
	}
}

// find returns the index of the element of l that pe (a Key or Value
// element) names, or -1.
func find(l []any, pe fieldpath.PathElement) int {
	for i, el := range l {
		switch {
		case pe.Value != nil:
			if value.Equals(value.NewValueInterface(el), *pe.Value) {
				return i
			}
		case pe.Key != nil:
			m, ok := el.(map[string]any)
			if !ok {
				continue
			}
			match := true
			for _, f := range *pe.Key {
				v, ok := m[f.Name]
				if !ok || !value.Equals(value.NewValueInterface(v), f.Value) {
					match = false
					break
				}
			}
			if match {
				return i
			}
		}
	}
	return -1
}

// carry sets, in dst, the field at p to its value in src, or removes it
// from dst when src lacks it. Used to keep the live values of ignored
// fields in a correction. It reports whether dst could be changed; a
// parent missing from dst is created only for map fields.
func carry(dst, src map[string]any, p fieldpath.Path) bool {
	if len(p) == 0 {
		return false
	}
	v, present := lookup(src, p)
	var cur any = dst
	for i, pe := range p {
		last := i == len(p)-1
		switch {
		case pe.FieldName != nil:
			m, ok := cur.(map[string]any)
			if !ok {
				return false
			}
			if last {
				if present {
					m[*pe.FieldName] = v
				} else {
					delete(m, *pe.FieldName)
				}
				return true
			}
			next, ok := m[*pe.FieldName]
			if !ok {
				if !present {
					return true
				}
				// Only a map parent can be made up; a list element
				// needs its keys.
				if p[i+1].FieldName == nil {
					return false
				}
				next = map[string]any{}
				m[*pe.FieldName] = next
			}
			cur = next
		default:
			l, ok := cur.([]any)
			if !ok {
				return false
			}
			idx := -1
			if pe.Index != nil {
				if *pe.Index >= 0 && *pe.Index < len(l) {
					idx = *pe.Index
				}
			} else {
				idx = find(l, pe)
			}
			if idx < 0 {
				return !present
			}
			if last {
				if present {
					l[idx] = v
				}
				// A set or list element cannot be removed in place
				// without rebuilding the parent; leave it.
				return present
			}
			cur = l[idx]
		}
	}
	return false
}

// segments renders p as JSON-pointer segments: field names as they are,
// list elements by their keys ("[name=app]"), set elements by value
// ("[=value]") and positions by index ("[2]").
func segments(p fieldpath.Path) []string {
	out := make([]string, len(p))
	for i, pe := range p {
		switch {
		case pe.FieldName != nil:
			out[i] = escapePointer(*pe.FieldName)
		case pe.Key != nil:
			kv := make([]string, len(*pe.Key))
			for j, f := range *pe.Key {
				kv[j] = f.Name + "=" + scalar(f.Value)
			}
			out[i] = "[" + strings.Join(kv, ",") + "]"
		case pe.Value != nil:
			out[i] = "[=" + scalar(*pe.Value) + "]"
		case pe.Index != nil:
			out[i] = fmt.Sprintf("[%d]", *pe.Index)
		}
	}
	return out
}

// scalar renders a key or set value: strings as they are, anything else
// as JSON.
func scalar(v value.Value) string {
	if v.IsString() {
		return escapePointer(v.AsString())
	}
	b, err := value.ToJSON(v)
	if err != nil {
		return "?"
	}
	return escapePointer(string(b))
}

// escapePointer escapes a JSON pointer segment (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// splitPointer splits a JSON pointer into its (still escaped) segments.
func splitPointer(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// ignored reports whether segs lies under one of rules: a rule matches a
// field when each of its segments equals the field's segment at that
// position or is "*".
func ignored(segs []string, rules [][]string) bool {
	for _, r := range rules {
		if len(r) == 0 || len(r) > len(segs) {
			continue
		}
		match := true
		for i, s := range r {
			if s != "*" && s != segs[i] {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}
