package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/rand"
)

// Event reasons.
const (
	// ReasonDriftDetected (Warning) is recorded on an object found drifted
	// and not corrected.
	ReasonDriftDetected = "DriftDetected"
	// ReasonDriftCorrected (Normal) is recorded on an object applied again.
	ReasonDriftCorrected = "DriftCorrected"
	// eventComponent is the source of the Events.
	eventComponent = "outpost-agent"
	// maxEventFields caps the fields an Event message names.
	maxEventFields = 10
)

// recordDrift records a Kubernetes Event about drift on the object, once
// per drift episode for detections. Failing to record it is logged only.
// obj is the live object, nil when it is gone (the Event then names the
// desired object, without a UID).
func (r *Reconciler) recordDrift(ctx context.Context, st *objectState, obj *unstructured.Unstructured, d *ObjectDrift, corrected bool, failure string) {
	reason, typ := ReasonDriftDetected, corev1.EventTypeWarning
	if corrected {
		reason, typ = ReasonDriftCorrected, corev1.EventTypeNormal
	}
	msg := driftMessage(d, corrected, failure)
	if !corrected {
		sig := msg
		r.mu.Lock()
		dup := st.event == sig
		st.event = sig
		r.mu.Unlock()
		if dup {
			return
		}
	}
	ref := obj
	if ref == nil {
		ref = st.desired
	}
	ns := st.key.namespace
	if ns == "" {
		// Kubernetes keeps Events about cluster-scoped objects in
		// default.
		ns = metav1.NamespaceDefault
	}
	now := metav1.NewTime(r.opts.Now())
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s.%s", st.key.name, rand.String(10)), Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: ref.GetAPIVersion(), Kind: ref.GetKind(), Namespace: st.key.namespace, Name: st.key.name,
			UID: ref.GetUID(), ResourceVersion: ref.GetResourceVersion(),
		},
		Reason: reason, Message: msg, Type: typ,
		Source:         corev1.EventSource{Component: eventComponent},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "outpost.dev/agent", ReportingInstance: r.opts.Identity,
	}
	if _, err := r.kube.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "drift event not recorded", slog.String(logObject, st.key.String()), slog.String(logError, err.Error()))
	}
}

// driftMessage names what drifted: fields only, never values.
func driftMessage(d *ObjectDrift, corrected bool, failure string) string {
	var what string
	switch {
	case d.Deleted:
		what = "the object was deleted"
	default:
		fields := d.Fields
		more := ""
		if len(fields) > maxEventFields {
			more = fmt.Sprintf(" and %d more", len(fields)-maxEventFields)
			fields = fields[:maxEventFields]
		}
		what = "fields changed outside Outpost: " + strings.Join(fields, ", ") + more
	}
	switch {
	case corrected:
		return "Drift corrected: " + what
	case failure != "":
		return "Drift detected, correction failed (" + failure + "): " + what
	}
	return "Drift detected: " + what
}
