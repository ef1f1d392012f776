package hub

import (
	"context"
	"fmt"
	"unicode"
	"unicode/utf8"

	"connectrpc.com/connect"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/store"
)

// Limits on drift reports.
const (
	maxDriftObjects  = 1000
	maxDriftFields   = 64
	maxDriftFieldLen = 512
	maxDriftErrorLen = 4096
	// maxDriftAddressLen bounds a Terraform resource address.
	maxDriftAddressLen = 1024
)

func (s *agentService) GetDesiredState(ctx context.Context, req *connect.Request[outpostv1.GetDesiredStateRequest]) (*connect.Response[outpostv1.GetDesiredStateResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	desired, err := s.h.store.ListDesiredReleases(ctx, caller.agent.Tenant, caller.env.ID)
	if err != nil {
		return nil, storeError("desired state", err)
	}
	resp := &outpostv1.GetDesiredStateResponse{}
	for _, d := range desired {
		rev := revisionToProto(caller.env.Name, d.Revision)
		// The agent reconciles specs; a terraform revision's plan and
		// outputs are for operators and would only make the response grow
		// with every release.
		rev.Plan, rev.Outputs = nil, nil
		resp.Releases = append(resp.Releases, &outpostv1.DesiredRelease{
			Name: d.Release.Name, Revision: rev, TaskId: d.Release.AppliedTaskID,
		})
	}
	return connect.NewResponse(resp), nil
}

// checkDrift validates a drift report and returns its objects as stored.
func checkDrift(m *outpostv1.ReportDriftRequest) ([]store.ObjectDrift, error) {
	if err := checkReleaseName(m.GetRelease()); err != nil {
		return nil, err
	}
	if m.GetRevision() < 1 {
		return nil, invalid("drift report: revision must be positive")
	}
	if len(m.GetObjects()) > maxDriftObjects {
		return nil, invalid("drift report: at most %d objects", maxDriftObjects)
	}
	if len(m.GetError()) > maxDriftErrorLen {
		return nil, invalid("drift report: error longer than %d bytes", maxDriftErrorLen)
	}
	out := make([]store.ObjectDrift, 0, len(m.GetObjects()))
	for i, o := range m.GetObjects() {
		if o.GetAddress() != "" {
			d, err := checkResourceDrift(i, o)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
			continue
		}
		if o.GetKind() == "" || o.GetName() == "" || len(o.GetGroup()) > 253 || len(o.GetKind()) > 63 ||
			len(o.GetVersion()) > 63 || len(o.GetNamespace()) > 63 || len(o.GetName()) > 253 {
			return nil, invalid("drift report: object %d: kind and name are required, within Kubernetes' lengths", i)
		}
		if len(o.GetFields()) > maxDriftFields {
			return nil, invalid("drift report: object %d: at most %d fields", i, maxDriftFields)
		}
		for _, f := range o.GetFields() {
			if len(f) > maxDriftFieldLen {
				return nil, invalid("drift report: object %d: field path longer than %d bytes", i, maxDriftFieldLen)
			}
		}
		out = append(out, store.ObjectDrift{
			Group: o.GetGroup(), Version: o.GetVersion(), Kind: o.GetKind(), Namespace: o.GetNamespace(),
			Name: o.GetName(), Deleted: o.GetDeleted(), Fields: o.GetFields(),
		})
	}
	return out, nil
}

// checkResourceDrift validates drift object i, a Terraform resource named
// by its address, and returns it as stored.
func checkResourceDrift(i int, o *outpostv1.ObjectDrift) (store.ObjectDrift, error) {
	a := o.GetAddress()
	switch {
	case len(a) > maxDriftAddressLen:
		return store.ObjectDrift{}, invalid("drift report: object %d: address longer than %d bytes", i, maxDriftAddressLen)
	case !printable(a):
		return store.ObjectDrift{}, invalid("drift report: object %d: address %q: want printable UTF-8 without control characters", i, truncate(a, 64))
	case o.GetGroup() != "" || o.GetVersion() != "" || o.GetKind() != "" || o.GetNamespace() != "" || o.GetName() != "":
		return store.ObjectDrift{}, invalid("drift report: object %d: a resource address goes without group, version, kind, namespace and name", i)
	case len(o.GetFields()) > maxDriftFields:
		return store.ObjectDrift{}, invalid("drift report: object %d: at most %d fields", i, maxDriftFields)
	}
	for _, f := range o.GetFields() {
		if len(f) > maxDriftFieldLen {
			return store.ObjectDrift{}, invalid("drift report: object %d: field longer than %d bytes", i, maxDriftFieldLen)
		}
	}
	return store.ObjectDrift{Address: a, Deleted: o.GetDeleted(), Fields: o.GetFields()}, nil
}

// printable reports whether s is valid UTF-8 of printable characters
// (spaces allowed, control characters not).
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) && r != ' ' {
			return false
		}
	}
	return true
}

func (s *agentService) ReportDrift(ctx context.Context, req *connect.Request[outpostv1.ReportDriftRequest]) (*connect.Response[outpostv1.ReportDriftResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	objects, err := checkDrift(req.Msg)
	if err != nil {
		return nil, err
	}
	now := s.h.opts.Now()
	observed := now
	if t := req.Msg.GetObservedAt(); t != nil && t.AsTime().Before(now) {
		observed = t.AsTime()
	}
	_, err = s.h.store.RecordDrift(ctx, store.DriftParams{
		Tenant: caller.agent.Tenant, EnvironmentID: caller.env.ID, Release: req.Msg.GetRelease(), Revision: req.Msg.GetRevision(),
		Objects: objects, Corrected: req.Msg.GetCorrected(), Error: req.Msg.GetError(), AgentID: caller.agent.ID, Now: observed,
	})
	if err != nil {
		return nil, storeError(fmt.Sprintf("drift report for release %s", req.Msg.GetRelease()), err)
	}
	s.h.notifier.seen(caller.agent.ID)
	return connect.NewResponse(&outpostv1.ReportDriftResponse{}), nil
}

func (s *agentService) RegisterEnvironmentKeys(ctx context.Context, req *connect.Request[outpostv1.RegisterEnvironmentKeysRequest]) (*connect.Response[outpostv1.RegisterEnvironmentKeysResponse], error) {
	caller, err := s.h.authAgent(ctx, req.Header(), auth.ScopeTasks)
	if err != nil {
		return nil, err
	}
	ks := req.Msg.GetKeys()
	if len(ks) == 0 || len(ks) > maxEnvironmentKeys {
		return nil, invalid("register keys: want 1 to %d keys", maxEnvironmentKeys)
	}
	envID := caller.env.Ref()
	now := s.h.opts.Now()
	keys := make([]store.EnvironmentKey, 0, len(ks))
	for _, k := range ks {
		pub := seal.PublicKey{Env: envID, Version: int(k.GetVersion()), Recipient: k.GetRecipient(), Fingerprint: k.GetFingerprint()}
		if err := pub.Validate(); err != nil {
			return nil, invalid("register keys: version %d: %v", k.GetVersion(), err)
		}
		keys = append(keys, store.EnvironmentKey{
			EnvironmentID: caller.env.ID, Version: pub.Version, Recipient: pub.Recipient, Fingerprint: pub.Fingerprint,
			Retired: k.GetRetired(), RegisteredAt: now, RegisteredBy: "agent:" + caller.agent.ID,
		})
	}
	// The request is the whole keyring: the store retires a registered
	// version it lacks, so nothing is sealed to it any more.
	if err := s.h.store.RegisterEnvironmentKeys(ctx, caller.agent.Tenant, caller.env.ID, keys, "agent:"+caller.agent.ID, now); err != nil {
		return nil, storeError("register keys", err)
	}
	return connect.NewResponse(&outpostv1.RegisterEnvironmentKeysResponse{}), nil
}
