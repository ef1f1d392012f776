package main

import (
	"context"
	"fmt"
	"os"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/outposthq/outpost/internal/executor/secret"
	"github.com/outposthq/outpost/internal/kube/kubetest"
)

// observation is a value a watch saw and when the event arrived.
type observation struct {
	at    time.Time
	value string
}

// watchSecretChecksum reports the checksum annotation of the benchmark's
// Secret on every event.
func watchSecretChecksum(ctx context.Context, env *kubetest.Env) <-chan observation {
	secrets := env.Client.CoreV1().Secrets(appNamespace)
	return watchValues(ctx, "secret", func(ctx context.Context, rv string) (watch.Interface, error) {
		return secrets.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + secretName, ResourceVersion: rv})
	}, func(obj runtime.Object) (string, string, bool) {
		s, ok := obj.(*corev1.Secret)
		if !ok {
			return "", "", false
		}
		return s.ResourceVersion, s.Annotations[secret.AnnotationChecksum], true
	})
}

// watchTemplateChecksum reports the pod template's secrets checksum of the
// benchmark's Deployment on every event.
func watchTemplateChecksum(ctx context.Context, env *kubetest.Env) <-chan observation {
	deployments := env.Client.AppsV1().Deployments(appNamespace)
	return watchValues(ctx, "deployment", func(ctx context.Context, rv string) (watch.Interface, error) {
		return deployments.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + workloadName, ResourceVersion: rv})
	}, func(obj runtime.Object) (string, string, bool) {
		d, ok := obj.(*appsv1.Deployment)
		if !ok {
			return "", "", false
		}
		return d.ResourceVersion, d.Spec.Template.Annotations[secret.AnnotationSecretsChecksum], true
	})
}

// watchValues keeps a watch open until ctx ends, starting again from the
// last resource version seen when the server closes it, and sends what
// read extracts from each object with the event's arrival time.
func watchValues(ctx context.Context, what string, start func(context.Context, string) (watch.Interface, error),
	read func(runtime.Object) (rv, value string, ok bool)) <-chan observation {
	out := make(chan observation, 4096)
	go func() {
		rv := ""
		for ctx.Err() == nil {
			w, err := start(ctx, rv)
			if err != nil {
				if ctx.Err() == nil {
					fmt.Fprintf(os.Stderr, "watch %s: %v; retrying\n", what, err)
					time.Sleep(100 * time.Millisecond)
				}
				continue
			}
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					rv = "" // expired: start from the current state
					break
				}
				if r, v, ok := read(ev.Object); ok {
					rv = r
					select {
					case out <- observation{at: time.Now(), value: v}:
					default: // the benchmark stopped reading
					}
				}
			}
			w.Stop()
		}
	}()
	return out
}
