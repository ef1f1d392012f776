package storetest

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/store"
)

var secretScenarios = []scenario{
	{"environment keys are registered once, retired for good, and never replaced", testEnvironmentKeys},
	{"secret versions are numbered per secret and stored with their task", testSecretVersions},
	{"a secret version whose task id is taken is not stored", testSecretTaskMismatch},
}

// sealedMarker is in every sealed value; it must never show up in audit
// details.
const sealedMarker = "CIPHERTEXT-never-audited"

// secret returns a version of namespace/name of the fixture's first
// environment.
func (f *fixture) secret(namespace, name string) store.SecretVersion {
	return store.SecretVersion{
		Tenant: f.tenant, EnvironmentID: f.env.ID, Namespace: namespace, Name: name,
		Keys: []string{"password", "username"}, KeyVersion: 1, KeyFingerprint: "sha256:fp1",
		Sealed: []byte(`{"v":1,"data":"` + sealedMarker + `"}`),
	}
}

// put stores v at now with a task named taskID.
func (f *fixture) put(t *testing.T, v store.SecretVersion, taskID string, now time.Time) (store.SecretVersion, store.Task) {
	t.Helper()
	v.CreatedAt = now
	task := f.task(taskID)
	task.EnvironmentID = v.EnvironmentID
	task.Kind = "secret"
	task.Spec = []byte(`{"secret":"` + v.Namespace + "/" + v.Name + `"}`)
	got, nt, err := f.s.PutSecretVersion(t.Context(), v, task, "operator:tok1")
	must(t, err)
	return got, nt
}

func testEnvironmentKeys(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	v1 := store.EnvironmentKey{Version: 1, Recipient: "age1one", Fingerprint: "sha256:one"}
	v2 := store.EnvironmentKey{Version: 2, Recipient: "age1two", Fingerprint: "sha256:two"}
	v3 := store.EnvironmentKey{Version: 3, Recipient: "age1three", Fingerprint: "sha256:three"}
	keys := func() []store.EnvironmentKey {
		t.Helper()
		got, err := s.ListEnvironmentKeys(ctx, f.tenant, f.env.ID)
		must(t, err)
		return got
	}
	keyEvents := func() []string { return actionsOf(f.releaseEvents(t, "environment.key_")) }

	none := keys()
	if len(none) != 0 {
		t.Fatalf("keys before registration: %+v", none)
	}
	must(t, s.RegisterEnvironmentKeys(ctx, f.tenant, f.env.ID, []store.EnvironmentKey{v1}, "agent:a1", T0))
	got := keys()
	want := v1
	want.EnvironmentID, want.RegisteredAt, want.RegisteredBy = f.env.ID, T0, "agent:a1"
	if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
		t.Fatalf("keys = %+v, want %+v", got, want)
	}

	steps := []struct {
		name    string
		keys    []store.EnvironmentKey
		err     error
		retired []bool
		events  []string
	}{
		{"registering the same key again changes nothing", []store.EnvironmentKey{v1}, nil, []bool{false}, nil},
		{"another recipient for a known version is refused", []store.EnvironmentKey{{Version: 1, Recipient: "age1evil"}}, store.ErrKeyMismatch, []bool{false}, nil},
		{"a refused batch adds none of its keys", []store.EnvironmentKey{v2, {Version: 1, Recipient: "age1evil"}}, store.ErrKeyMismatch, []bool{false}, nil},
		{"a new version is added and an old one retired", []store.EnvironmentKey{{Version: 1, Recipient: "age1one", Fingerprint: "sha256:one", Retired: true}, v2}, nil,
			[]bool{true, false}, []string{store.ActionEnvironmentKeyRetired, store.ActionEnvironmentKeyRegistered}},
		{"a retired key is never un-retired", []store.EnvironmentKey{v1, v2}, nil, []bool{true, false}, nil},
		{"a version missing from the keyring is retired", []store.EnvironmentKey{v3}, nil, []bool{true, true, false},
			[]string{store.ActionEnvironmentKeyRegistered, store.ActionEnvironmentKeyRetired}},
	}
	for i, st := range steps {
		before := keyEvents()
		err := s.RegisterEnvironmentKeys(ctx, f.tenant, f.env.ID, st.keys, "agent:a1", T0.Add(time.Duration(i+1)*time.Minute))
		if st.err != nil {
			wantErr(t, err, st.err)
		} else {
			must(t, err)
		}
		got := keys()
		var retired []bool
		for _, k := range got {
			retired = append(retired, k.Retired)
		}
		if !slices.Equal(retired, st.retired) || got[0].Recipient != "age1one" {
			t.Fatalf("%s: keys %+v, want retired %v", st.name, got, st.retired)
		}
		if added := keyEvents()[len(before):]; !slices.Equal(added, st.events) {
			t.Fatalf("%s: events %v, want %v", st.name, added, st.events)
		}
	}
	got = keys()
	if got[1].Version != 2 || got[1].Recipient != "age1two" || !got[1].RegisteredAt.Equal(T0.Add(4*time.Minute)) {
		t.Fatalf("version 2 = %+v", got[1])
	}
	if all := keyEvents(); !slices.Equal(all, []string{store.ActionEnvironmentKeyRegistered, store.ActionEnvironmentKeyRetired, store.ActionEnvironmentKeyRegistered,
		store.ActionEnvironmentKeyRegistered, store.ActionEnvironmentKeyRetired}) {
		t.Fatalf("key events = %v", all)
	}
	wantErr(t, s.RegisterEnvironmentKeys(ctx, f.tenant, "nope", []store.EnvironmentKey{v1}, "agent:a1", T0), store.ErrNotFound)
}

func testSecretVersions(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()

	in := f.secret("app", "db")
	in.Adopt = true
	v1, task := f.put(t, in, "secret-1", T0)
	want := in
	want.Version, want.TaskID, want.TaskState, want.CreatedBy, want.CreatedAt = 1, "secret-1", store.StateQueued, "operator:tok1", T0
	if !reflect.DeepEqual(v1, want) {
		t.Fatalf("PutSecretVersion =\n%+v\nwant\n%+v", v1, want)
	}
	if task.ID != "secret-1" || task.State != store.StateQueued {
		t.Fatalf("PutSecretVersion task = %+v", task)
	}
	sameTask(t, f.get(t, "secret-1"), task)

	v2, _ := f.put(t, f.secret("app", "db"), "secret-2", T0.Add(time.Minute))
	gone := f.secret("app", "db")
	gone.Deleted, gone.Sealed, gone.Keys = true, nil, nil
	v3, _ := f.put(t, gone, "secret-3", T0.Add(2*time.Minute))
	cache, _ := f.put(t, f.secret("app", "cache"), "cache-1", T0.Add(3*time.Minute))
	other := f.secret("app", "db")
	other.EnvironmentID = f.env2.ID
	dev, _ := f.put(t, other, "dev-db-1", T0.Add(4*time.Minute))
	if v2.Version != 2 || v3.Version != 3 || !v3.Deleted || v3.Sealed != nil || cache.Version != 1 || dev.Version != 1 {
		t.Fatalf("versions %d, %d (deleted %v), cache %d, dev %d; want 2, 3 (deleted), 1, 1", v2.Version, v3.Version, v3.Deleted, cache.Version, dev.Version)
	}

	// A repeat of a stored version's task stores nothing new.
	again, _ := f.put(t, f.secret("app", "db"), "secret-2", T0.Add(5*time.Minute))
	if again.Version != 2 {
		t.Fatalf("repeating secret-2 returned version %d, want 2", again.Version)
	}

	// Ending the task of the deleted version shows in the listing.
	f.claim(t, "a1", 100, T0.Add(6*time.Minute))
	f.complete(t, f.get(t, "secret-3"), store.OutcomeSucceeded, false, T0.Add(6*time.Minute))
	list, err := s.ListSecrets(ctx, f.tenant, f.env.ID)
	must(t, err)
	var got []string
	for _, v := range list {
		got = append(got, fmt.Sprintf("%s/%s@%d:%s", v.Namespace, v.Name, v.Version, v.TaskState))
	}
	if want := []string{"app/cache@1:leased", "app/db@3:succeeded"}; !slices.Equal(got, want) {
		t.Fatalf("ListSecrets = %v, want %v", got, want)
	}
	if !list[1].Deleted || !reflect.DeepEqual(list[0].Keys, []string{"password", "username"}) || !strings.Contains(string(list[0].Sealed), sealedMarker) {
		t.Fatalf("listed versions lost their metadata: %+v", list)
	}

	history, err := s.SecretHistory(ctx, f.tenant, f.env.ID, "app", "db")
	must(t, err)
	if len(history) != 3 || history[0].Version != 3 || history[1].Version != 2 || history[2].Version != 1 {
		t.Fatalf("SecretHistory = %+v, want versions 3, 2, 1", history)
	}
	first := history[2]
	want.TaskState = store.StateLeased
	if !reflect.DeepEqual(first, want) {
		t.Fatalf("version 1 read back\n%+v\nwant\n%+v", first, want)
	}

	var actions []string
	for _, e := range f.releaseEvents(t, "secret.") {
		actions = append(actions, e.Action)
		if e.Subject != "app/db" && e.Subject != "app/cache" {
			t.Fatalf("secret event subject %q", e.Subject)
		}
		for _, k := range []string{`"namespace":"app"`, `"version":`, `"key_version":1`, `"key_fingerprint":"sha256:fp1"`} {
			if !strings.Contains(e.Details, k) {
				t.Fatalf("%s details %s lack %s", e.Action, e.Details, k)
			}
		}
	}
	wantActions := []string{store.ActionSecretSet, store.ActionSecretSet, store.ActionSecretDeleted, store.ActionSecretSet, store.ActionSecretSet}
	if !slices.Equal(actions, wantActions) {
		t.Fatalf("secret events %v, want %v", actions, wantActions)
	}
	noSecretsAudited(t, f)
}

func testSecretTaskMismatch(t *testing.T, s store.Store) {
	f := newFixture(t, s)
	ctx := t.Context()
	f.put(t, f.secret("app", "db"), "secret-1", T0)
	plain := f.enqueue(t, f.task("plain"))
	reused := f.task("secret-1")
	reused.Spec = []byte(`{"other":true}`)

	tests := []struct {
		name string
		task store.Task
	}{
		{"a task id used for another spec", reused},
		// The same request as a task that carries no version.
		{"the repeat of a task that stored no version", plain},
	}
	for _, tt := range tests {
		events := len(f.events(t))
		_, _, err := s.PutSecretVersion(ctx, f.secret("app", "db"), tt.task, "operator:tok1")
		wantErr(t, err, store.ErrIdempotencyMismatch)
		history, err := s.SecretHistory(ctx, f.tenant, f.env.ID, "app", "db")
		must(t, err)
		if len(history) != 1 {
			t.Fatalf("%s: %d versions stored, want 1", tt.name, len(history))
		}
		if n := len(f.events(t)); n != events {
			t.Fatalf("%s: appended %d events", tt.name, n-events)
		}
	}
	if got := f.get(t, "secret-1"); string(got.Spec) != `{"secret":"app/db"}` {
		t.Fatalf("the first task was replaced: %s", got.Spec)
	}
}
