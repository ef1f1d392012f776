package terraform

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/outposthq/outpost/internal/taskspec"
)

// planInputs are the digests of what a plan was made from: the module
// archive's bytes and the plain variables' canonical JSON, each a hex
// sha256. Sensitive variables are not among them: their values are
// secrets and their references name no content.
type planInputs struct {
	Module    string `json:"module"`
	Variables string `json:"variables"`
}

// newPlanInputs digests a module archive and the plain variables. The
// variables' JSON is canonical: object keys sorted at every level,
// numbers as written, no insignificant space.
func newPlanInputs(archive []byte, vars map[string]json.RawMessage) planInputs {
	m := sha256.Sum256(archive)
	canon := make(map[string]any, len(vars))
	for name, raw := range vars {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			// Not JSON (the spec's decoding refuses that): still the
			// same digest for the same bytes.
			v = string(raw)
		}
		canon[name] = v
	}
	// A map of decoded JSON values always marshals, keys sorted.
	data, _ := json.Marshal(canon)
	v := sha256.Sum256(data)
	return planInputs{Module: hex.EncodeToString(m[:]), Variables: hex.EncodeToString(v[:])}
}

// planDigest identifies a plan by what it does and what it was made
// from, never by values (which can be secrets): the resources it changes
// with their actions, in plan order, whether it is a destroy plan, and
// the digests of its module and plain variables. The same changes of the
// same module and variables give the same digest, so an operator approves
// a set of actions of one module revision, and a module re-pushed under
// the same tag needs a new approval.
func planDigest(resources []taskspec.TerraformResourceChange, destroy bool, in planInputs) string {
	type change struct {
		Address string `json:"address"`
		Action  string `json:"action"`
	}
	doc := struct {
		Destroy   bool       `json:"destroy"`
		Resources []change   `json:"resources"`
		Inputs    planInputs `json:"inputs"`
	}{Destroy: destroy, Resources: make([]change, 0, len(resources)), Inputs: in}
	for _, rc := range resources {
		doc.Resources = append(doc.Resources, change{Address: rc.Address, Action: rc.Action})
	}
	// Marshalling a struct of strings and a bool cannot fail, and its
	// field order is fixed, so the encoding is canonical.
	data, _ := json.Marshal(doc)
	sum := sha256.Sum256(data)
	return taskspec.PlanDigestPrefix + hex.EncodeToString(sum[:])
}

// addChange counts one resource change into p, as the CLI does: a
// replacement is one add and one destroy. Other actions (no-op, read,
// forget) are not changes and are skipped.
func addChange(p *taskspec.TerraformPlanSummary, address string, replace, create, update, remove bool) {
	var action string
	switch {
	case replace:
		p.Add++
		p.Destroy++
		action = taskspec.ResourceReplace
	case create:
		p.Add++
		action = taskspec.ResourceCreate
	case update:
		p.Change++
		action = taskspec.ResourceUpdate
	case remove:
		p.Destroy++
		action = taskspec.ResourceDelete
	default:
		return
	}
	p.Resources = append(p.Resources, taskspec.TerraformResourceChange{Address: address, Action: action})
}

// planStream collects a plan's changes from its machine-readable UI: a
// planned_change message for each resource instance that changes, in no
// set order, and a change_summary with the counts.
type planStream struct {
	changes []plannedChange
	summary *uiChangeSummary
}

// plannedChange is one counted change and its place in plan order.
type plannedChange struct {
	order  resourceOrder
	change taskspec.TerraformResourceChange
}

func (p *planStream) message(m *uiMessage) {
	switch m.Type {
	case msgPlannedChange:
		c := m.Change
		if c == nil {
			return
		}
		switch c.Action {
		case taskspec.ResourceCreate, taskspec.ResourceUpdate, taskspec.ResourceDelete, taskspec.ResourceReplace:
		default:
			// No-op, move, import, read, forget ("remove") and open are
			// not changes: show -json lists them and addChange skips them.
			return
		}
		p.changes = append(p.changes, plannedChange{
			order:  newResourceOrder(c, c.Action == taskspec.ResourceDelete),
			change: taskspec.TerraformResourceChange{Address: c.Resource.Addr, Action: c.Action},
		})
	case msgChangeSummary:
		if m.Changes != nil && m.Changes.Operation == "plan" {
			cs := *m.Changes
			p.summary = &cs
		}
	}
}

// summarize fills sum (but HasChanges) from the changes, in the order
// show -json lists them, so the digest is the one it gave. The CLI's own
// counts must match: a stream that lost a change must not pass for a plan
// that deletes nothing.
func (p *planStream) summarize(sum *taskspec.TerraformPlanSummary, destroy bool, in planInputs) error {
	if p.summary == nil {
		return fmt.Errorf("%w: the plan reported no change summary", errStream)
	}
	slices.SortStableFunc(p.changes, func(a, b plannedChange) int { return compareResourceOrder(&a.order, &b.order) })
	all := taskspec.TerraformPlanSummary{HasChanges: sum.HasChanges}
	for _, c := range p.changes {
		a := c.change.Action
		addChange(&all, c.change.Address, a == taskspec.ResourceReplace, a == taskspec.ResourceCreate, a == taskspec.ResourceUpdate, a == taskspec.ResourceDelete)
	}
	if cs := p.summary; all.Add != cs.Add || all.Change != cs.Change || all.Destroy != cs.Remove {
		return fmt.Errorf("%w: the planned changes (%d to add, %d to change, %d to destroy) do not match the plan's summary (%d, %d, %d)",
			errStream, all.Add, all.Change, all.Destroy, cs.Add, cs.Change, cs.Remove)
	}
	all.Digest = planDigest(all.Resources, destroy, in)
	// The counts and the digest cover every resource; the list is capped
	// and says how many it leaves out.
	if len(all.Resources) > taskspec.MaxPlanResources {
		all.Omitted = len(all.Resources) - taskspec.MaxPlanResources
		all.Resources = slices.Clone(all.Resources[:taskspec.MaxPlanResources])
	}
	*sum = all
	return nil
}

// resourceOrder places a resource instance in plan order, the order of
// OpenTofu's AbsResourceInstance.Less that show -json sorts by: module
// path (shorter first, then step by step name and key), then mode
// (ephemeral, data, managed), type, name and key (none, then numbers,
// then strings). A deposed object has the address of its resource's
// current object and is always deleted: show -json lists it after the
// current object, so at equal addresses a deletion sorts last.
type resourceOrder struct {
	module  []moduleStep
	mode    int
	typ     string
	name    string
	key     instanceKey
	deleted bool
}

type moduleStep struct {
	name string
	key  instanceKey
}

// instanceKey is an instance key: kind keyNone, keyInt or keyString.
type instanceKey struct {
	kind int
	i    int
	s    string
}

const (
	keyNone = iota
	keyInt
	keyString
)

func newResourceOrder(c *uiChange, deleted bool) resourceOrder {
	r := c.Resource
	o := resourceOrder{typ: r.ResourceType, name: r.ResourceName, deleted: deleted, mode: 2}
	switch {
	case strings.HasPrefix(r.Resource, "ephemeral."):
		o.mode = 0
	case strings.HasPrefix(r.Resource, "data."):
		o.mode = 1
	}
	o.key = jsonInstanceKey(r.ResourceKey)
	if steps, ok := parseModuleInstance(r.Module); ok {
		o.module = steps
	} else {
		// Not an address this parser knows: still a total order.
		o.module = []moduleStep{{name: r.Module}}
	}
	return o
}

func compareResourceOrder(a, b *resourceOrder) int {
	if c := cmp.Compare(len(a.module), len(b.module)); c != 0 {
		return c
	}
	for i := range a.module {
		if c := cmp.Compare(a.module[i].name, b.module[i].name); c != 0 {
			return c
		}
		if c := compareInstanceKey(a.module[i].key, b.module[i].key); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.mode, b.mode); c != 0 {
		return c
	}
	if c := cmp.Compare(a.typ, b.typ); c != 0 {
		return c
	}
	if c := cmp.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := compareInstanceKey(a.key, b.key); c != 0 {
		return c
	}
	switch {
	case a.deleted == b.deleted:
		return 0
	case b.deleted:
		return -1
	}
	return 1
}

func compareInstanceKey(a, b instanceKey) int {
	if c := cmp.Compare(a.kind, b.kind); c != 0 {
		return c
	}
	if c := cmp.Compare(a.i, b.i); c != 0 {
		return c
	}
	return cmp.Compare(a.s, b.s)
}

// jsonInstanceKey reads a planned change's resource_key: null, a number
// or a string.
func jsonInstanceKey(raw json.RawMessage) instanceKey {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return instanceKey{kind: keyString, s: s}
	}
	var i int
	if json.Unmarshal(raw, &i) == nil && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return instanceKey{kind: keyInt, i: i}
	}
	return instanceKey{}
}

// parseModuleInstance parses a module instance address as OpenTofu's
// ModuleInstance.String writes it: `module.a[0].module.b["k"]`, the
// string keys in HCL's quoted syntax.
func parseModuleInstance(s string) ([]moduleStep, bool) {
	var steps []moduleStep
	for s != "" {
		rest, ok := strings.CutPrefix(s, "module.")
		if !ok {
			return nil, false
		}
		var step moduleStep
		end := strings.IndexAny(rest, "[.")
		if end < 0 {
			end = len(rest)
		}
		step.name, rest = rest[:end], rest[end:]
		if step.name == "" {
			return nil, false
		}
		if strings.HasPrefix(rest, "[") {
			k, n, ok := parseInstanceKey(rest)
			if !ok {
				return nil, false
			}
			step.key, rest = k, rest[n:]
		}
		if rest != "" {
			if rest, ok = strings.CutPrefix(rest, "."); !ok || rest == "" {
				return nil, false
			}
		}
		steps = append(steps, step)
		s = rest
	}
	return steps, true
}

// parseInstanceKey parses `[0]` or `["k"]` at the start of s and returns
// the key and its length.
func parseInstanceKey(s string) (instanceKey, int, bool) {
	if !strings.HasPrefix(s, `["`) {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return instanceKey{}, 0, false
		}
		i, err := strconv.Atoi(s[1:end])
		if err != nil {
			return instanceKey{}, 0, false
		}
		return instanceKey{kind: keyInt, i: i}, end + 1, true
	}
	// The closing quote is the first one no backslash escapes.
	for i := 2; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			if i+1 >= len(s) || s[i+1] != ']' {
				return instanceKey{}, 0, false
			}
			v, err := strconv.Unquote(s[1 : i+1])
			if err != nil {
				return instanceKey{}, 0, false
			}
			// HCL also doubles a template introducer's sigil.
			v = strings.ReplaceAll(strings.ReplaceAll(v, "$${", "${"), "%%{", "%{")
			return instanceKey{kind: keyString, s: v}, i + 2, true
		}
	}
	return instanceKey{}, 0, false
}
