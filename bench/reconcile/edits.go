package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/outposthq/outpost/bench/internal/stats"
)

// Edits are made as `kubectl edit` makes them: an Update by another field
// manager.
const (
	editManager = "kubectl-edit"
	// correctionTimeout bounds the wait for one edit to be undone; past
	// it the edit is a miss.
	correctionTimeout = 30 * time.Second
)

// editKind is what one edit changes.
type editKind int

const (
	editImage  editKind = iota // the Deployment's container image
	editConfig                 // a ConfigMap data value
)

func (k editKind) String() string {
	if k == editImage {
		return "Deployment image"
	}
	return "ConfigMap data value"
}

// editResults are the correction latencies of the edits, by kind, and the
// edits not undone in time.
type editResults struct {
	all    stats.Sample
	byKind map[editKind]stats.Sample
	misses []string
}

// target is the object one edit changes: how to read and watch it, and
// how to change it and read the edited field back.
type target interface {
	// get reads the object by a list of that one name; rv is the list's
	// resource version, which a watch can start from even when the object
	// itself is older than etcd's last compaction, and value the edited
	// field's value.
	get(ctx context.Context) (rv, value string, err error)
	// watch watches the object from resource version rv.
	watch(ctx context.Context, rv string) (watch.Interface, error)
	// edit sets the field to value in one Update and returns the new
	// resource version.
	edit(ctx context.Context, value string) (string, error)
	// value reads the field from a watched object.
	value(obj any) (string, bool)
}

// runEdits makes cfg.edits edits one at a time and times their correction.
func runEdits(ctx context.Context, client kubernetes.Interface, rels []release, cfg config) (editResults, error) {
	rng := rand.New(rand.NewPCG(uint64(cfg.seed), 0)) //nolint:gosec // the choice of releases, not a secret
	res := editResults{byKind: map[editKind]stats.Sample{}}
	for i := range cfg.edits {
		rel := rels[rng.IntN(len(rels))]
		kind := editKind(i % 2)
		var tg target
		want := desiredValue
		if kind == editImage {
			tg, want = deploymentTarget{client: client, rel: rel}, desiredImage
		} else {
			tg = configMapTarget{client: client, rel: rel}
		}
		d, err := timeCorrection(ctx, tg, want, fmt.Sprintf("edited-%d", i))
		switch {
		case errors.Is(err, errMiss):
			res.misses = append(res.misses, fmt.Sprintf("edit %d (%s of %s/%s): %v", i, kind, rel.namespace, rel.name, err))
		case err != nil:
			return res, fmt.Errorf("edit %d (%s of %s/%s): %w", i, kind, rel.namespace, rel.name, err)
		default:
			res.all = append(res.all, d)
			res.byKind[kind] = append(res.byKind[kind], d)
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(cfg.gap):
		}
	}
	return res, nil
}

// errMiss is an edit the agent did not undo within correctionTimeout.
var errMiss = errors.New("not corrected")

// timeCorrection edits the target's field to bad and returns the time
// from the edit's return to the first watch event showing want again.
// The watch is opened before the edit, at the version listed, so the
// correction cannot slip by unseen; its events are read after the edit
// returned, so a time is never below the true one.
func timeCorrection(ctx context.Context, tg target, want, bad string) (time.Duration, error) {
	rv, v, err := tg.get(ctx)
	if err != nil {
		return 0, err
	}
	if v != want {
		return 0, fmt.Errorf("%w: before the edit the field is %q, want %q (an earlier edit was not undone)", errMiss, v, want)
	}
	wctx, cancel := context.WithTimeout(ctx, correctionTimeout+5*time.Second)
	defer cancel()
	w, err := tg.watch(wctx, rv)
	if err != nil {
		return 0, fmt.Errorf("watch: %w", err)
	}
	defer w.Stop()
	editRV, err := tg.edit(ctx, bad)
	if err != nil {
		return 0, err
	}
	edited := time.Now()
	deadline := time.After(correctionTimeout)
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok {
				return 0, fmt.Errorf("%w: the watch ended", errMiss)
			}
			if ev.Type == watch.Error {
				return 0, fmt.Errorf("watch: %w", apierrors.FromObject(ev.Object))
			}
			if ev.Type == watch.Deleted {
				continue
			}
			m, ok := ev.Object.(metav1.Object)
			if !ok || m.GetResourceVersion() == editRV {
				continue
			}
			if got, ok := tg.value(ev.Object); ok && got == want {
				return time.Since(edited), nil
			}
		case <-deadline:
			return 0, fmt.Errorf("%w within %v", errMiss, correctionTimeout)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// deploymentTarget edits the container image of a release's Deployment.
type deploymentTarget struct {
	client kubernetes.Interface
	rel    release
}

func (t deploymentTarget) get(ctx context.Context) (string, string, error) {
	l, err := t.client.AppsV1().Deployments(t.rel.namespace).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + t.rel.name})
	if err != nil {
		return "", "", err
	}
	if len(l.Items) != 1 {
		return "", "", fmt.Errorf("deployment %s/%s: %d found", t.rel.namespace, t.rel.name, len(l.Items))
	}
	v, _ := t.value(&l.Items[0])
	return l.ResourceVersion, v, nil
}

func (t deploymentTarget) watch(ctx context.Context, rv string) (watch.Interface, error) {
	return t.client.AppsV1().Deployments(t.rel.namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + t.rel.name, ResourceVersion: rv})
}

func (t deploymentTarget) edit(ctx context.Context, value string) (string, error) {
	for range 10 {
		d, err := t.client.AppsV1().Deployments(t.rel.namespace).Get(ctx, t.rel.name, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		d.Spec.Template.Spec.Containers[0].Image = "registry.example/" + value + ":6.6.6"
		out, err := t.client.AppsV1().Deployments(t.rel.namespace).Update(ctx, d, metav1.UpdateOptions{FieldManager: editManager})
		if err == nil {
			return out.ResourceVersion, nil
		}
		if !apierrors.IsConflict(err) {
			return "", fmt.Errorf("edit: %w", err)
		}
	}
	return "", errors.New("edit: conflicts kept coming")
}

func (deploymentTarget) value(obj any) (string, bool) {
	d, ok := obj.(*appsv1.Deployment)
	if !ok || len(d.Spec.Template.Spec.Containers) == 0 {
		return "", false
	}
	return d.Spec.Template.Spec.Containers[0].Image, true
}

// configMapTarget edits a data value of a release's ConfigMap.
type configMapTarget struct {
	client kubernetes.Interface
	rel    release
}

func (t configMapTarget) get(ctx context.Context) (string, string, error) {
	l, err := t.client.CoreV1().ConfigMaps(t.rel.namespace).List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + t.rel.configMap()})
	if err != nil {
		return "", "", err
	}
	if len(l.Items) != 1 {
		return "", "", fmt.Errorf("configmap %s/%s: %d found", t.rel.namespace, t.rel.configMap(), len(l.Items))
	}
	return l.ResourceVersion, l.Items[0].Data[configKey], nil
}

func (t configMapTarget) watch(ctx context.Context, rv string) (watch.Interface, error) {
	return t.client.CoreV1().ConfigMaps(t.rel.namespace).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + t.rel.configMap(), ResourceVersion: rv})
}

func (t configMapTarget) edit(ctx context.Context, value string) (string, error) {
	for range 10 {
		cm, err := t.client.CoreV1().ConfigMaps(t.rel.namespace).Get(ctx, t.rel.configMap(), metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		cm.Data[configKey] = value
		out, err := t.client.CoreV1().ConfigMaps(t.rel.namespace).Update(ctx, cm, metav1.UpdateOptions{FieldManager: editManager})
		if err == nil {
			return out.ResourceVersion, nil
		}
		if !apierrors.IsConflict(err) {
			return "", fmt.Errorf("edit: %w", err)
		}
	}
	return "", errors.New("edit: conflicts kept coming")
}

func (configMapTarget) value(obj any) (string, bool) {
	cm, ok := obj.(*corev1.ConfigMap)
	if !ok {
		return "", false
	}
	return cm.Data[configKey], true
}
