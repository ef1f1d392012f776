package manifests

import (
	"cmp"
	"slices"
)

// installOrder is the order kinds are applied in, after Helm's install
// order: what others depend on (namespaces, quotas, accounts, config,
// storage, types, RBAC) before the workloads that use it, and webhooks last
// so they cannot block the release's own objects. Kinds not listed come
// after, by name.
var installOrder = []string{
	"Namespace", "CustomResourceDefinition", "NetworkPolicy", "ResourceQuota", "LimitRange",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role",
	"RoleBinding", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet",
	"Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass",
	"Ingress", "APIService", "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}

var installRank = func() map[string]int {
	m := make(map[string]int, len(installOrder))
	for i, k := range installOrder {
		m[k] = i
	}
	return m
}()

// foundation reports whether objects of kind must exist before the rest of
// a bundle can be dry-run or applied.
func foundation(group, kind string) bool {
	return group == "" && kind == "Namespace" || group == "apiextensions.k8s.io" && kind == "CustomResourceDefinition"
}

// compareKinds orders kinds for installation.
func compareKinds(a, b string) int {
	ra, oka := installRank[a]
	rb, okb := installRank[b]
	switch {
	case oka && okb:
		return cmp.Compare(ra, rb)
	case oka:
		return -1
	case okb:
		return 1
	}
	return cmp.Compare(a, b)
}

// byKind groups items into batches of one kind each, in install order (or
// its reverse), keeping the input order inside a batch.
func byKind[T any](items []T, kind func(T) string, reverse bool) [][]T {
	groups := map[string][]T{}
	var kinds []string
	for _, it := range items {
		k := kind(it)
		if _, ok := groups[k]; !ok {
			kinds = append(kinds, k)
		}
		groups[k] = append(groups[k], it)
	}
	slices.SortFunc(kinds, compareKinds)
	if reverse {
		slices.Reverse(kinds)
	}
	out := make([][]T, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, groups[k])
	}
	return out
}
