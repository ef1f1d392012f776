package terraform

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/outposthq/outpost/internal/taskspec"
)

// planDigest identifies a plan by what it does, never by values (which can
// be secrets): the resources it changes with their actions, in plan order,
// and whether it is a destroy plan. The same changes give the same digest
// whatever the values, so an operator approves a set of actions.
func planDigest(resources []taskspec.TerraformResourceChange, destroy bool) string {
	type change struct {
		Address string `json:"address"`
		Action  string `json:"action"`
	}
	doc := struct {
		Destroy   bool     `json:"destroy"`
		Resources []change `json:"resources"`
	}{Destroy: destroy, Resources: make([]change, 0, len(resources))}
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
