package helm_test

import (
	"archive/tar"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/executor/helm"
)

const minimalChart = "apiVersion: v2\nname: tiny\nversion: 0.1.0\n"

const tinyConfigMap = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-tiny\n"

func TestUntrustedCharts(t *testing.T) {
	s := admin(t)
	ex := s.executor(t, func(o *helm.Options) { o.MaxFileBytes = 64 << 10 })
	bomb := "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
	for i, prev := 'b', 'a'; i <= 'j'; i, prev = i+1, i {
		refs := strings.Repeat("*"+string(prev)+",", 9)
		bomb += string(i) + ": &" + string(i) + " [" + strings.TrimSuffix(refs, ",") + "]\n"
	}
	subchart := func(entries ...entry) []byte { return tgz(t, entries) }
	cases := []struct {
		name    string
		entries []entry
		target  error
		text    string
	}{
		{"a path that climbs out of the chart", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/../../etc/cron.d/x", data: []byte("x")}}, archive.ErrUnsafePath, "cron.d"},
		{"an absolute path", []entry{{name: "/etc/passwd", data: []byte("x")}, {name: "tiny/Chart.yaml", data: []byte(minimalChart)}}, archive.ErrUnsafePath, "/etc/passwd"},
		{"a symlink", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/templates/link.yaml", typeflag: tar.TypeSymlink, linkname: "/var/run/secrets/kubernetes.io/serviceaccount/token"}}, archive.ErrUnsupportedEntry, "link.yaml"},
		{"a device file", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/templates/dev", typeflag: tar.TypeChar}}, archive.ErrUnsupportedEntry, "dev"},
		{"a file over the per-file cap", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/templates/big.yaml", data: []byte(strings.Repeat("#", 65<<10))}}, archive.ErrTooLarge, "big.yaml"},
		{"an alias bomb in values.yaml", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/values.yaml", data: []byte(bomb)}}, nil, "values.yaml"},
		{"a subchart that climbs out", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/charts/evil.tgz", data: subchart(entry{name: "evil/Chart.yaml", data: []byte("apiVersion: v2\nname: evil\nversion: 1.0.0\n")}, entry{name: "evil/../../../x", data: []byte("x")})}}, archive.ErrUnsafePath, "subchart charts/evil"},
		{"a schema that references a remote document", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/values.schema.json", data: []byte(`{"$ref": "https://attacker.example.com/schema.json"}`)}}, nil, "points outside the schema"},
		{"a schema that references a file", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "tiny/values.schema.json", data: []byte(`{"properties": {"x": {"$ref": "file:///etc/passwd"}}}`)}}, nil, "file:///etc/passwd"},
		{"two charts in one archive", []entry{{name: "tiny/Chart.yaml", data: []byte(minimalChart)}, {name: "other/Chart.yaml", data: []byte(minimalChart)}}, archive.ErrUnsafePath, "one chart"},
	}
	for _, c := range cases {
		t.Run("refuses "+c.name, func(t *testing.T) {
			_, err := run(t, ex, "crafted", shop(s.target, "crafted", tgz(t, c.entries), nil))
			wantPhase(t, err, helm.PhaseVerify, true, c.target, c.text)
		})
	}

	t.Run("renders DNS lookups as nothing", func(t *testing.T) {
		entries := []entry{
			{name: "tiny/Chart.yaml", data: []byte(minimalChart)},
			{name: "tiny/templates/cm.yaml", data: []byte(tinyConfigMap + "data:\n  ip: {{ getHostByName \"localhost\" | quote }}\n")},
		}
		mustRun(t, ex, "dns", shop(s.target, "dns", tgz(t, entries), nil))
		cm, err := env.Client.CoreV1().ConfigMaps(s.target).Get(t.Context(), "dns-tiny", getOpts)
		if err != nil {
			t.Fatal(err)
		}
		if ip := cm.Data["ip"]; ip != "" {
			t.Errorf("getHostByName rendered %q, want nothing: templates may not reach DNS", ip)
		}
	})
}
