package hub

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// connectionString is what the database Secret holds in these tests; no
// manifest may carry it or any part of it.
const connectionString = "postgres://outpost:s3cr3t-pa55word@db.internal:5432/outpost?sslmode=verify-full"

func TestConnectionStringIsOnlyReferenced(t *testing.T) {
	ch := loadChart(t)
	for _, tc := range renderCases {
		if !strings.Contains(tc.values, "mode: postgres") {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			rel, err := render(t.Context(), ch, parseValues(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			for _, leak := range []string{"postgres://", "postgresql://", "s3cr3t"} {
				if strings.Contains(rel.Manifest, leak) {
					t.Errorf("the manifest holds %q", leak)
				}
			}
			checkSecretReference(t, deployment(t, objects(t, rel.Manifest)).Spec.Template.Spec)
		})
	}
}

// checkSecretReference asserts that both containers take the database
// from the Secret through the environment and name only the variable on
// their command line.
func checkSecretReference(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	for _, c := range slices.Concat(spec.InitContainers, spec.Containers) {
		if got := dbArg(c); got != "$(OUTPOST_HUB_DB)" {
			t.Errorf("container %s runs with --db=%s, want the variable $(OUTPOST_HUB_DB)", c.Name, got)
		}
		i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "OUTPOST_HUB_DB" })
		if i < 0 {
			t.Errorf("container %s has no OUTPOST_HUB_DB", c.Name)
			continue
		}
		e := c.Env[i]
		if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			t.Errorf("container %s takes OUTPOST_HUB_DB from %+v, want a Secret reference", c.Name, e)
			continue
		}
		if ref := e.ValueFrom.SecretKeyRef; ref.Name != "outpost-hub-db" || ref.Key != "dsn" {
			t.Errorf("container %s reads Secret %s key %s, want outpost-hub-db key dsn", c.Name, ref.Name, ref.Key)
		}
	}
}

func TestInstalledReleaseHoldsNoConnectionString(t *testing.T) {
	env := cluster(t)
	ctx := t.Context()
	ns := env.Namespace(t, "hub-chart-secret")
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "outpost-hub-db", Namespace: ns},
		StringData: map[string]string{"dsn": connectionString},
	}
	if _, err := env.Client.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rel := install(t, env, ns, loadChart(t), parseValues(t, postgresValues))
	if strings.Contains(rel.Manifest, "s3cr3t") || strings.Contains(rel.Manifest, "postgres://") {
		t.Error("the release record holds the connection string")
	}
	d, err := env.Client.AppsV1().Deployments(ns).Get(ctx, releaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	checkSecretReference(t, d.Spec.Template.Spec)
}
