package manifests

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Rule is one entry of the agent's deny list. An object matches a rule when
// its API group and kind match; it is denied when Violation, given the
// object, returns a reason (or when Violation is nil).
type Rule struct {
	// Name identifies the rule in errors.
	Name string
	// Group is the API group ("" for the core group).
	Group string
	// Kind is the object kind, or "*" for every kind of Group.
	Kind string
	// Violation says why obj breaks the rule, "" when it does not. Nil
	// denies every object of the kind.
	Violation func(obj map[string]any) string
	// Privileged marks a rule that Options.AllowPrivileged turns off.
	Privileged bool
}

func (r Rule) matches(group, kind string) bool {
	return r.Group == group && (r.Kind == "*" || r.Kind == kind)
}

// podSpecPaths says where each workload kind keeps its pod spec.
var podSpecPaths = []struct {
	group, kind string
	path        []string
}{
	{"", "Pod", []string{"spec"}},
	{"", "PodTemplate", []string{"template", "spec"}},
	{"", "ReplicationController", []string{"spec", "template", "spec"}},
	{"apps", "Deployment", []string{"spec", "template", "spec"}},
	{"apps", "StatefulSet", []string{"spec", "template", "spec"}},
	{"apps", "DaemonSet", []string{"spec", "template", "spec"}},
	{"apps", "ReplicaSet", []string{"spec", "template", "spec"}},
	{"batch", "Job", []string{"spec", "template", "spec"}},
	{"batch", "CronJob", []string{"spec", "jobTemplate", "spec", "template", "spec"}},
}

// DefaultDeny returns the deny list an agent uses unless configured
// otherwise: bindings to the cluster-admin ClusterRole, and pod specs that
// escape their container (privileged containers, host PID, network or IPC
// namespaces, hostPath volumes, the SYS_ADMIN capability), the latter
// marked Privileged.
func DefaultDeny() []Rule {
	rules := []Rule{
		{Name: "cluster-admin binding", Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding", Violation: clusterAdminRef},
		{Name: "cluster-admin binding", Group: "rbac.authorization.k8s.io", Kind: "RoleBinding", Violation: clusterAdminRef},
	}
	for _, p := range podSpecPaths {
		rules = append(rules, Rule{Name: "privileged pod", Group: p.group, Kind: p.kind, Violation: podSpecViolation(p.path), Privileged: true})
	}
	return rules
}

// ParseDenyRules parses a comma-separated list of kinds to deny outright,
// each "group/Kind", "Kind" for the core group, or "group/*" for a whole
// group, e.g. "rbac.authorization.k8s.io/ClusterRoleBinding,Secret". It is
// meant for an agent flag; the rules it returns add to DefaultDeny().
func ParseDenyRules(s string) ([]Rule, error) {
	var rules []Rule
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		group, kind := "", entry
		if i := strings.LastIndexByte(entry, '/'); i >= 0 {
			group, kind = entry[:i], entry[i+1:]
			if errs := validation.IsDNS1123Subdomain(group); len(errs) > 0 {
				return nil, fmt.Errorf("manifests: deny rule %q: group %q: %s", entry, group, errs[0])
			}
		}
		if kind != "*" && !isKind(kind) {
			return nil, fmt.Errorf("manifests: deny rule %q: want group/Kind, Kind (core group) or group/*", entry)
		}
		rules = append(rules, Rule{Name: "kind " + entry, Group: group, Kind: kind})
	}
	return rules, nil
}

func isKind(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// checkDeny returns the reason the first rule that denies u gives, with the
// rule's name, or "" when u passes.
func checkDeny(rules []Rule, allowPrivileged bool, u *unstructured.Unstructured) string {
	gvk := u.GroupVersionKind()
	for _, r := range rules {
		if !r.matches(gvk.Group, gvk.Kind) || (r.Privileged && allowPrivileged) {
			continue
		}
		if r.Violation == nil {
			return fmt.Sprintf("rule %q: the kind is not allowed", r.Name)
		}
		if why := r.Violation(u.Object); why != "" {
			return fmt.Sprintf("rule %q: %s", r.Name, why)
		}
	}
	return ""
}

func clusterAdminRef(obj map[string]any) string {
	kind, _, _ := unstructured.NestedString(obj, "roleRef", "kind")
	name, _, _ := unstructured.NestedString(obj, "roleRef", "name")
	if kind == "ClusterRole" && name == "cluster-admin" {
		return "roleRef is the ClusterRole cluster-admin"
	}
	return ""
}

func podSpecViolation(path []string) func(map[string]any) string {
	return func(obj map[string]any) string {
		spec, found, err := unstructured.NestedMap(obj, path...)
		if err != nil || !found {
			return ""
		}
		at := strings.Join(path, ".")
		for _, host := range []string{"hostPID", "hostNetwork", "hostIPC"} {
			if v, _ := spec[host].(bool); v {
				return fmt.Sprintf("%s.%s is true", at, host)
			}
		}
		volumes, _ := spec["volumes"].([]any)
		for i, v := range volumes {
			if m, ok := v.(map[string]any); ok && m["hostPath"] != nil {
				return fmt.Sprintf("%s.volumes[%d] (%v) is a hostPath volume", at, i, m["name"])
			}
		}
		for _, field := range []string{"initContainers", "containers", "ephemeralContainers"} {
			containers, _ := spec[field].([]any)
			for i, c := range containers {
				m, ok := c.(map[string]any)
				if !ok {
					continue
				}
				where := fmt.Sprintf("%s.%s[%d] (%v).securityContext", at, field, i, m["name"])
				if priv, _, _ := unstructured.NestedBool(m, "securityContext", "privileged"); priv {
					return where + ".privileged is true"
				}
				caps, _, _ := unstructured.NestedSlice(m, "securityContext", "capabilities", "add")
				for _, c := range caps {
					s, _ := c.(string)
					switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "CAP_")) {
					case "SYS_ADMIN", "ALL":
						return fmt.Sprintf("%s.capabilities.add holds %s", where, s)
					}
				}
			}
		}
		return ""
	}
}

// Denied returns why the first of rules that denies u rejects it, naming
// the rule, or "" when u passes. Other executors (helm) check what they
// render with it, so the agent has one deny list.
func Denied(rules []Rule, allowPrivileged bool, u *unstructured.Unstructured) string {
	return checkDeny(rules, allowPrivileged, u)
}
