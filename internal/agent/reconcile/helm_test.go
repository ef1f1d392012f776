package reconcile_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/outposthq/outpost/internal/agent/reconcile"
	"github.com/outposthq/outpost/internal/executor"
	"github.com/outposthq/outpost/internal/executor/helm"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/vault"
)

// redactor drops what a task registers.
type redactor struct{}

func (redactor) AddSecret(string) {}

// installChart installs testdata/charts/web as Helm release name with the
// project's helm executor.
func (s *setup) installChart(t *testing.T, name string, values ...string) {
	t.Helper()
	resolver, err := vault.NewResolver(vault.ResolverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := helm.New(helm.Options{Config: rest.CopyConfig(s.cfg), Vault: resolver})
	if err != nil {
		t.Fatal(err)
	}
	spec := taskspec.Helm{Release: name, Namespace: s.target, Chart: &taskspec.HelmChart{Archive: packChart(t, "web")}}
	if len(values) > 0 {
		spec.Values = json.RawMessage(values[0])
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ex.Execute(t.Context(), executor.Task{ID: fmt.Sprintf("install-%s-%d", name, agentSeq.Add(1)), Kind: taskspec.KindHelm, Spec: raw, Attempt: 1, Redact: redactor{}}); err != nil {
		t.Fatalf("helm install: %v", err)
	}
}

// packChart packs testdata/charts/<name> as helm package would.
func packChart(t *testing.T, name string) []byte {
	t.Helper()
	root := filepath.Join("testdata", "charts", name)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path) //nolint:gosec // test fixtures
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name + "/" + filepath.ToSlash(rel), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAHelmReleaseIsCorrectedAsHelm(t *testing.T) {
	s := newSetup(t)
	s.installChart(t, "shop")
	rel := reconcile.Release{Name: "shop-env", Kind: reconcile.KindHelm, Revision: 7, Helm: &reconcile.HelmRef{Namespace: s.target, ReleaseName: "shop"}}
	r := s.start(t, []reconcile.Release{rel})
	r.reports.wait(t, "the in-sync report", inSync("shop-env"))
	if st := r.Stats(); st.Objects != 2 {
		t.Errorf("%d objects watched, want the chart's 2", st.Objects)
	}

	s.edit(t, "shop-web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })

	waitFor(t, "the image to be restored", func() bool { return s.image(t, "shop-web") == "nginx:1.27" })
	d := r.reports.wait(t, "the correction report", corrected("shop-env", "Deployment", "shop-web"))
	if got := object(t, d, "Deployment", "shop-web").Fields; !slices.Equal(got, []string{"/spec/template/spec/containers/[name=web]/image"}) {
		t.Errorf("drifted fields %v, want the image only", got)
	}
	dep := s.deployment(t, "shop-web")
	if dep.Annotations["meta.helm.sh/release-name"] != "shop" || dep.Labels["app.kubernetes.io/managed-by"] != "Helm" {
		t.Errorf("labels %v, annotations %v: the correction dropped Helm's ownership metadata", dep.Labels, dep.Annotations)
	}
	for _, mf := range dep.ManagedFields {
		if strings.Contains(mf.FieldsV1.GetRawString(), `"f:image"`) && mf.Manager != "helm" {
			t.Errorf("field manager %s (%s) still owns the image; want helm", mf.Manager, mf.Operation)
		}
	}
	if _, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "shop-settings", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestAHelmUpgradeByATaskIsNotUndone(t *testing.T) {
	s := newSetup(t)
	s.installChart(t, "shop")
	rel := reconcile.Release{Name: "shop-env", Kind: reconcile.KindHelm, Revision: 1, Helm: &reconcile.HelmRef{Namespace: s.target, ReleaseName: "shop"}}
	locks := &countingLocker{}
	r := s.start(t, []reconcile.Release{rel}, func(o *reconcile.Options) { o.Lock = locks })
	r.reports.wait(t, "the in-sync report", inSync("shop-env"))

	// The upgrade task holds the release's lock, as the agent's tasks do.
	unlock, err := locks.Locker.Lock(t.Context(), []string{reconcile.LockKey("shop-env")})
	if err != nil {
		t.Fatal(err)
	}
	syncs := r.Stats().Syncs
	s.installChart(t, "shop", `{"image": "nginx:1.28"}`)
	unlock()

	waitFor(t, "a full sync of the upgraded release", func() bool { return r.Stats().Syncs > syncs })
	if got := s.image(t, "shop-web"); got != "nginx:1.28" {
		t.Fatalf("image %s: the reconciler undid the upgrade", got)
	}
	if n := r.Stats().Corrections; n != 0 {
		t.Errorf("%d corrections", n)
	}

	// Drift from the upgraded state is corrected to it.
	s.edit(t, "shop-web", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = "nginx:evil" })
	waitFor(t, "the image to be restored to the upgrade's", func() bool { return s.image(t, "shop-web") == "nginx:1.28" })
}
