package secret

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/outposthq/outpost/internal/taskspec"
)

// Annotations of the workloads that restart on secrets.
const (
	// AnnotationRestartOn, on a Deployment, StatefulSet or DaemonSet,
	// lists comma-separated the Secrets whose change restarts it.
	AnnotationRestartOn = "outpost.dev/restart-on-secrets"
	// AnnotationSecretsChecksum, on the pod template, is the combined
	// checksum of the listed Secrets that exist; changing it rolls the
	// pods.
	AnnotationSecretsChecksum = "outpost.dev/secrets-checksum" //nolint:gosec // an annotation name, not a credential
)

// workload is what the rollout needs of one Deployment, StatefulSet or
// DaemonSet.
type workload struct {
	kind, name string
	listed     []string
	current    string
}

// rollout patches the pod template checksum of every workload in the
// namespace that lists spec.Name, where it differs. It only lists and
// patches workloads, so RBAC without update on them is enough.
func (e *Executor) rollout(ctx context.Context, spec taskspec.Secret, sum string) ([]Workload, error) {
	all, err := e.workloads(ctx, spec.Namespace)
	if err != nil {
		return nil, kubeError(spec, "list workloads", err)
	}
	sums := map[string]string{spec.Name: sum}
	var patched []Workload
	for _, w := range all {
		if !slices.Contains(w.listed, spec.Name) {
			continue
		}
		combined, err := e.combined(ctx, spec, w.listed, sums)
		if err != nil {
			return patched, err
		}
		if combined == w.current {
			continue
		}
		if err := e.patch(ctx, spec.Namespace, w, combined); err != nil {
			return patched, kubeError(spec, fmt.Sprintf("patch %s %s", w.kind, w.name), err)
		}
		patched = append(patched, Workload{Kind: w.kind, Name: w.name})
	}
	return patched, nil
}

// combined is the checksum of the listed Secrets that exist, read from
// their checksum annotations; sums caches them across workloads.
func (e *Executor) combined(ctx context.Context, spec taskspec.Secret, listed []string, sums map[string]string) (string, error) {
	h := sha256.New()
	for _, name := range listed {
		s, ok := sums[name]
		if !ok {
			obj, err := e.opts.Client.CoreV1().Secrets(spec.Namespace).Get(ctx, name, metav1.GetOptions{})
			switch {
			case apierrors.IsNotFound(err):
			case err != nil:
				return "", kubeError(spec, "get secret "+name, err)
			default:
				s = obj.Annotations[AnnotationChecksum]
			}
			sums[name] = s
		}
		if s != "" {
			fmt.Fprintf(h, "%s=%s\n", name, s)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (e *Executor) workloads(ctx context.Context, ns string) ([]workload, error) {
	apps := e.opts.Client.AppsV1()
	var out []workload
	deps, err := apps.Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, d := range deps.Items {
		out = append(out, workload{"Deployment", d.Name, parseList(d.Annotations[AnnotationRestartOn]), d.Spec.Template.Annotations[AnnotationSecretsChecksum]})
	}
	sts, err := apps.StatefulSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, s := range sts.Items {
		out = append(out, workload{"StatefulSet", s.Name, parseList(s.Annotations[AnnotationRestartOn]), s.Spec.Template.Annotations[AnnotationSecretsChecksum]})
	}
	dss, err := apps.DaemonSets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for _, d := range dss.Items {
		out = append(out, workload{"DaemonSet", d.Name, parseList(d.Annotations[AnnotationRestartOn]), d.Spec.Template.Annotations[AnnotationSecretsChecksum]})
	}
	return out, nil
}

func (e *Executor) patch(ctx context.Context, ns string, w workload, sum string) error {
	body, err := json.Marshal(map[string]any{"spec": map[string]any{"template": map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{AnnotationSecretsChecksum: sum},
	}}}})
	if err != nil {
		return err
	}
	apps := e.opts.Client.AppsV1()
	opts := metav1.PatchOptions{}
	switch w.kind {
	case "Deployment":
		_, err = apps.Deployments(ns).Patch(ctx, w.name, types.StrategicMergePatchType, body, opts)
	case "StatefulSet":
		_, err = apps.StatefulSets(ns).Patch(ctx, w.name, types.StrategicMergePatchType, body, opts)
	default:
		_, err = apps.DaemonSets(ns).Patch(ctx, w.name, types.StrategicMergePatchType, body, opts)
	}
	return err
}

// parseList splits a comma-separated list of names, trimming spaces and
// dropping empties and repeats, sorted so the combined checksum does not
// depend on the order written.
func parseList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
