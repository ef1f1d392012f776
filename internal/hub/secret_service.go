package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"connectrpc.com/connect"
	"k8s.io/apimachinery/pkg/util/validation"

	outpostv1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/seal"
	"github.com/outposthq/outpost/internal/store"
	"github.com/outposthq/outpost/internal/taskspec"
)

// Limits on sealed secrets.
const (
	// maxSealedBytes bounds a sealed value as sent: the ciphertext of
	// seal.MaxValuesSize bytes, base64 in JSON, plus metadata.
	maxSealedBytes = seal.MaxValuesSize/3*4*4/3 + 64<<10
	// maxEnvironmentKeys bounds the key versions an agent registers.
	maxEnvironmentKeys = 64
	secretTaskPrefix   = "sec-"
)

// ageHeader starts every age file; a sealed value without it is not one.
var ageHeader = []byte("age-encryption.org/v1\n")

// checkSecretRef validates a secret's namespace and name.
func checkSecretRef(namespace, name string) error {
	if !namePattern.MatchString(namespace) {
		return invalid("namespace %q must be a DNS-1123 label", truncate(namespace, 64))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return invalid("secret name %q: %s", truncate(name, 64), errs[0])
	}
	return nil
}

// checkSealed decodes a sealed value and checks that it is one: sealed for
// this environment and secret, to a registered key that is not retired,
// holding an age file. Anything else, a plaintext payload above all, is
// refused before it is stored.
func checkSealed(raw []byte, envID, name string, keys []store.EnvironmentKey) (*seal.Sealed, error) {
	if len(raw) > maxSealedBytes {
		return nil, connect.NewError(connect.CodeResourceExhausted, fmt.Errorf("sealed value of %d bytes exceeds %d", len(raw), maxSealedBytes))
	}
	var s seal.Sealed
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, invalid("sealed: not a sealed value (the hub accepts only values sealed with `outpost secret set`): %v", jsonProblem(err))
	}
	if dec.More() {
		return nil, invalid("sealed: trailing data after the sealed value")
	}
	switch {
	case s.Env != envID:
		return nil, invalid("sealed: sealed for environment %q, not %q", truncate(s.Env, 64), envID)
	case s.Name != name:
		return nil, invalid("sealed: sealed for secret %q, not %q", truncate(s.Name, 64), name)
	case !bytes.HasPrefix(s.Ciphertext, ageHeader):
		return nil, invalid("sealed: ciphertext is not an age file; the hub accepts only sealed values")
	}
	i := slices.IndexFunc(keys, func(k store.EnvironmentKey) bool { return k.Version == s.KeyVersion })
	switch {
	case i < 0:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("sealed: key version %d is not registered for %s", s.KeyVersion, envID))
	case keys[i].Retired:
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("sealed: key version %d of %s is retired; seal to the newest key", s.KeyVersion, envID))
	case keys[i].Fingerprint != s.Fingerprint:
		return nil, invalid("sealed: fingerprint does not match key version %d of %s", s.KeyVersion, envID)
	}
	return &s, nil
}

// jsonProblem describes a decoding error without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at offset %d", syn.Offset)
	case errors.As(err, &typ):
		return fmt.Sprintf("field %q has the wrong type", typ.Field)
	}
	// Unknown-field errors name the field, which is not a value.
	return err.Error()
}

func checkSecretKeys(keys []string) error {
	if len(keys) > seal.MaxKeys {
		return invalid("at most %d keys per secret", seal.MaxKeys)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if errs := validation.IsConfigMapKey(k); len(errs) > 0 {
			return invalid("key %q: %s", truncate(k, 64), errs[0])
		}
		if seen[k] {
			return invalid("key %q given twice", k)
		}
		seen[k] = true
	}
	return nil
}

// secretTask builds the task writing (or deleting) a secret version.
func (s *operatorService) secretTask(envID, tenant string, spec *taskspec.Secret) (store.Task, error) {
	t, err := s.hubTask(store.Task{
		ID: auth.NewID(secretTaskPrefix), Tenant: tenant, EnvironmentID: envID, Kind: taskspec.KindSecret,
		ConflictKeys: []string{spec.ConflictKey()},
	}, spec)
	if err != nil {
		return store.Task{}, err
	}
	if err := taskspec.Validate(taskspec.KindSecret, t.Spec); err != nil {
		return store.Task{}, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return t, nil
}

func (s *operatorService) GetEnvironmentKeys(ctx context.Context, req *connect.Request[outpostv1.GetEnvironmentKeysRequest]) (*connect.Response[outpostv1.GetEnvironmentKeysResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, err := s.envByName(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	keys, err := s.h.store.ListEnvironmentKeys(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("environment keys", err)
	}
	resp := &outpostv1.GetEnvironmentKeysResponse{}
	for _, k := range keys {
		resp.Keys = append(resp.Keys, keyToProto(k))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) SetSecret(ctx context.Context, req *connect.Request[outpostv1.SetSecretRequest]) (*connect.Response[outpostv1.SetSecretResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	env, err := s.envByName(ctx, c, m.GetEnvironment())
	if err != nil {
		return nil, err
	}
	if err := checkSecretRef(m.GetNamespace(), m.GetName()); err != nil {
		return nil, err
	}
	if err := checkSecretKeys(m.GetKeys()); err != nil {
		return nil, err
	}
	keys, err := s.h.store.ListEnvironmentKeys(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("set secret", err)
	}
	envID := env.Ref()
	sealed, err := checkSealed(m.GetSealed(), envID, m.GetName(), keys)
	if err != nil {
		return nil, err
	}
	task, err := s.secretTask(env.ID, c.token.Tenant, &taskspec.Secret{Name: m.GetName(), Namespace: m.GetNamespace(), Sealed: sealed, Adopt: m.GetAdopt()})
	if err != nil {
		return nil, err
	}
	v, t, err := s.h.store.PutSecretVersion(ctx, store.SecretVersion{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Namespace: m.GetNamespace(), Name: m.GetName(),
		Keys: m.GetKeys(), KeyVersion: sealed.KeyVersion, KeyFingerprint: sealed.Fingerprint,
		Sealed: m.GetSealed(), Adopt: m.GetAdopt(), TaskID: task.ID, CreatedBy: c.actor(), CreatedAt: task.CreatedAt,
	}, task, c.actor())
	if err != nil {
		return nil, storeError(fmt.Sprintf("set secret %s/%s", m.GetNamespace(), m.GetName()), err)
	}
	s.h.metrics.enqueued.Inc()
	return connect.NewResponse(&outpostv1.SetSecretResponse{Secret: secretToProto(env.Name, v), Task: s.h.taskToProto(ctx, t)}), nil
}

func (s *operatorService) ListSecrets(ctx context.Context, req *connect.Request[outpostv1.ListSecretsRequest]) (*connect.Response[outpostv1.ListSecretsResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, err := s.envByName(ctx, c, req.Msg.GetEnvironment())
	if err != nil {
		return nil, err
	}
	vs, err := s.h.store.ListSecrets(ctx, c.token.Tenant, env.ID)
	if err != nil {
		return nil, storeError("list secrets", err)
	}
	resp := &outpostv1.ListSecretsResponse{}
	for _, v := range vs {
		resp.Secrets = append(resp.Secrets, secretToProto(env.Name, v))
	}
	return connect.NewResponse(resp), nil
}

// history returns a secret's versions, newest first; NotFound when none.
func (s *operatorService) history(ctx context.Context, c operatorCaller, envName, namespace, name string) (store.Environment, []store.SecretVersion, error) {
	env, err := s.envByName(ctx, c, envName)
	if err != nil {
		return store.Environment{}, nil, err
	}
	if err := checkSecretRef(namespace, name); err != nil {
		return store.Environment{}, nil, err
	}
	vs, err := s.h.store.SecretHistory(ctx, c.token.Tenant, env.ID, namespace, name)
	if err != nil {
		return store.Environment{}, nil, storeError("secret history", err)
	}
	if len(vs) == 0 {
		return store.Environment{}, nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("secret %s/%s not found in environment %s", namespace, name, env.Name))
	}
	return env, vs, nil
}

func (s *operatorService) GetSecretHistory(ctx context.Context, req *connect.Request[outpostv1.GetSecretHistoryRequest]) (*connect.Response[outpostv1.GetSecretHistoryResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	env, vs, err := s.history(ctx, c, req.Msg.GetEnvironment(), req.Msg.GetNamespace(), req.Msg.GetName())
	if err != nil {
		return nil, err
	}
	resp := &outpostv1.GetSecretHistoryResponse{}
	for _, v := range vs {
		resp.Versions = append(resp.Versions, secretToProto(env.Name, v))
	}
	return connect.NewResponse(resp), nil
}

func (s *operatorService) DeleteSecret(ctx context.Context, req *connect.Request[outpostv1.DeleteSecretRequest]) (*connect.Response[outpostv1.DeleteSecretResponse], error) {
	c, err := s.h.authOperator(ctx, req.Header())
	if err != nil {
		return nil, err
	}
	m := req.Msg
	env, vs, err := s.history(ctx, c, m.GetEnvironment(), m.GetNamespace(), m.GetName())
	if err != nil {
		return nil, err
	}
	if vs[0].Deleted && vs[0].TaskState != store.StateFailed && vs[0].TaskState != store.StateCancelled {
		return nil, connect.NewError(connect.CodeFailedPrecondition, fmt.Errorf("secret %s/%s is already deleted (version %d)", m.GetNamespace(), m.GetName(), vs[0].Version))
	}
	task, err := s.secretTask(env.ID, c.token.Tenant, &taskspec.Secret{Name: m.GetName(), Namespace: m.GetNamespace(), Delete: true})
	if err != nil {
		return nil, err
	}
	v, t, err := s.h.store.PutSecretVersion(ctx, store.SecretVersion{
		Tenant: c.token.Tenant, EnvironmentID: env.ID, Namespace: m.GetNamespace(), Name: m.GetName(),
		Deleted: true, TaskID: task.ID, CreatedBy: c.actor(), CreatedAt: task.CreatedAt,
	}, task, c.actor())
	if err != nil {
		return nil, storeError(fmt.Sprintf("delete secret %s/%s", m.GetNamespace(), m.GetName()), err)
	}
	s.h.metrics.enqueued.Inc()
	return connect.NewResponse(&outpostv1.DeleteSecretResponse{Secret: secretToProto(env.Name, v), Task: s.h.taskToProto(ctx, t)}), nil
}

func keyToProto(k store.EnvironmentKey) *outpostv1.EnvironmentKey {
	return &outpostv1.EnvironmentKey{
		Version:      int32(min(k.Version, 1<<31-1)), //nolint:gosec // clamped
		Recipient:    k.Recipient,
		Fingerprint:  k.Fingerprint,
		Retired:      k.Retired,
		RegisteredAt: ts(k.RegisteredAt),
		RegisteredBy: k.RegisteredBy,
	}
}

// secretToProto converts a version's metadata; the sealed value stays on
// the hub.
func secretToProto(envName string, v store.SecretVersion) *outpostv1.SecretInfo {
	return &outpostv1.SecretInfo{
		Environment:    envName,
		Namespace:      v.Namespace,
		Name:           v.Name,
		Keys:           v.Keys,
		Version:        v.Version,
		KeyVersion:     int32(min(v.KeyVersion, 1<<31-1)), //nolint:gosec // clamped
		KeyFingerprint: v.KeyFingerprint,
		UpdatedBy:      v.CreatedBy,
		UpdatedAt:      ts(v.CreatedAt),
		Deleted:        v.Deleted,
		TaskId:         v.TaskID,
		TaskState:      taskStates[v.TaskState],
	}
}
