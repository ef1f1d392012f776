package terraform

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/outposthq/outpost/internal/taskspec"
)

// showSummary summarizes a plan file as the executor did before it read
// the plan's machine-readable UI: through show -json.
func showSummary(t *testing.T, tf *tfexec.Terraform, planFile string, destroy bool) taskspec.TerraformPlanSummary {
	t.Helper()
	p, err := tf.ShowPlanFile(t.Context(), planFile)
	if err != nil {
		t.Fatal(err)
	}
	var sum taskspec.TerraformPlanSummary
	for _, rc := range p.ResourceChanges {
		if rc == nil || rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		addChange(&sum, rc.Address, a.Replace(), a.Create(), a.Update(), a.Delete())
	}
	sum.Digest = planDigest(sum.Resources, destroy, planInputs{})
	return sum
}

// Resources with count and for_each keys (numbers, strings that
// need quoting) at the root and in module instances, so that plan order
// matters; the second version creates, updates, replaces and deletes.
const (
	orderChild = `
variable "v" {
  type = string
}

resource "terraform_data" "c" {
  count = 2
  input = var.v
}
`
	orderRoot = `
variable "rev" {
  type = string
}

resource "terraform_data" "keep" {
  for_each = toset(["b", "a", "k\"q", "$${x}", "10", "9"])
  input    = "${each.key}-${var.rev == "2" ? "x" : "y"}"
}

resource "terraform_data" "n" {
  count = var.rev == "2" ? 3 : 12
  input = count.index
}

resource "terraform_data" "r" {
  triggers_replace = var.rev
}

resource "terraform_data" "new" {
  count = var.rev == "2" ? 1 : 0
}

module "m" {
  source   = "./child"
  for_each = toset(["z", "a", "a.b", "a[0]"])
  v        = "${each.key}-${var.rev}"
}

module "one" {
  source = "./child"
  v      = var.rev
}
`
)

func TestPlanSummaryMatchesShow(t *testing.T) {
	tofu := filepath.Join(os.Getenv("HOME"), ".cache", "outpost", "bin", "tofu-v1.11.6")
	if c := os.Getenv("OUTPOST_CACHE"); c != "" {
		tofu = filepath.Join(c, "bin", "tofu-v1.11.6")
	}
	if _, err := os.Stat(tofu); err != nil {
		t.Skipf("no OpenTofu binary at %s; run hack/tofu.sh", tofu)
	}
	dir := t.TempDir()
	for name, body := range map[string]string{"main.tf": orderRoot, "child/main.tf": orderChild} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tf, err := tfexec.NewTerraform(dir, tofu)
	if err != nil {
		t.Fatal(err)
	}
	if err := tf.SetEnv(map[string]string{"CHECKPOINT_DISABLE": "1", "HOME": dir, "TF_DATA_DIR": filepath.Join(dir, ".data")}); err != nil {
		t.Fatal(err)
	}
	if err := tf.Init(t.Context()); err != nil {
		t.Fatal(err)
	}
	plan := func(t *testing.T, rev string, destroy bool) (stream, show taskspec.TerraformPlanSummary) {
		t.Helper()
		vars := filepath.Join(dir, "vars.tfvars.json")
		if err := os.WriteFile(vars, []byte(fmt.Sprintf(`{"rev": %q}`, rev)), 0o600); err != nil {
			t.Fatal(err)
		}
		planFile := filepath.Join(dir, "p.tfplan")
		var changes planStream
		st := newUIStream(func(s string) string { return s }, changes.message)
		has, err := tf.PlanJSON(t.Context(), st, tfexec.Out(planFile), tfexec.VarFile(vars), tfexec.Destroy(destroy))
		tf.SetStdout(nil)
		if err != nil {
			t.Fatal(st.failed(err))
		}
		if err := st.finish(); err != nil {
			t.Fatal(err)
		}
		stream.HasChanges = has
		if err := changes.summarize(&stream, destroy, planInputs{}); err != nil {
			t.Fatal(err)
		}
		show = showSummary(t, tf, planFile, destroy)
		show.HasChanges = has
		return stream, show
	}
	apply := func(t *testing.T) {
		t.Helper()
		if err := tf.Apply(t.Context(), tfexec.DirOrPlan(filepath.Join(dir, "p.tfplan"))); err != nil {
			t.Fatal(err)
		}
	}
	same := func(t *testing.T, stream, show taskspec.TerraformPlanSummary, want string) {
		t.Helper()
		if !slices.Equal(stream.Resources, show.Resources) || stream.Add != show.Add || stream.Change != show.Change ||
			stream.Destroy != show.Destroy || stream.Digest != show.Digest || stream.HasChanges != show.HasChanges {
			t.Fatalf("summary from the stream\n%+v\ndiffers from show -json's\n%+v", stream, show)
		}
		var actions []string
		for _, rc := range show.Resources {
			if !slices.Contains(actions, rc.Action) {
				actions = append(actions, rc.Action)
			}
		}
		slices.Sort(actions)
		if got := strings.Join(actions, ","); got != want {
			t.Fatalf("actions %s, want %s (the test plans too little)", got, want)
		}
	}
	t.Run("a plan that creates everything", func(t *testing.T) {
		stream, show := plan(t, "1", false)
		same(t, stream, show, "create")
		apply(t)
	})
	t.Run("a plan that creates, updates, replaces and deletes", func(t *testing.T) {
		stream, show := plan(t, "2", false)
		same(t, stream, show, "create,delete,replace,update")
		apply(t)
	})
	t.Run("a destroy plan", func(t *testing.T) {
		stream, show := plan(t, "2", true)
		same(t, stream, show, "delete")
	})
}

func TestUIStream(t *testing.T) {
	const (
		change  = `{"@level":"info","change":{"resource":{"addr":"terraform_data.a[0]","module":"","resource":"terraform_data.a[0]","resource_type":"terraform_data","resource_name":"a","resource_key":0},"action":"create"},"type":"planned_change"}`
		summary = `{"changes":{"add":1,"change":0,"import":0,"remove":0,"forget":0,"operation":"plan"},"type":"change_summary"}`
		lock    = `{"@level":"error","@message":"Error: Error acquiring the state lock","diagnostic":{"severity":"error","summary":"Error acquiring the state lock","detail":"Error message: resource temporarily unavailable\nLock Info:\n  ID:        1234\n  Who:       me@host\n  Operation: OperationTypeApply\n"},"type":"diagnostic"}`
		leaky   = `{"diagnostic":{"severity":"error","summary":"Invalid function argument","detail":"Invalid value for \"v\" parameter.","range":{"filename":"main.tf","start":{"line":7}},"snippet":{"context":"resource \"terraform_data\" \"x\"","values":[{"traversal":"var.pw","statement":"is \"hunter2\""}]}},"type":"diagnostic"}`
		warning = `{"diagnostic":{"severity":"warning","summary":"Deprecated","detail":"hunter2"},"type":"diagnostic"}`
	)
	redact := func(s string) string { return strings.ReplaceAll(s, "hunter2", Redacted) }
	t.Run("messages split across writes are read whole", func(t *testing.T) {
		var p planStream
		st := newUIStream(redact, p.message)
		all := "not json\n" + change + "\n" + summary // the last line has no newline
		for i := range len(all) {
			if n, err := st.Write([]byte(all[i : i+1])); n != 1 || err != nil {
				t.Fatalf("write = %d, %v", n, err)
			}
		}
		if err := st.finish(); err != nil {
			t.Fatal(err)
		}
		var sum taskspec.TerraformPlanSummary
		if err := p.summarize(&sum, false, planInputs{}); err != nil {
			t.Fatal(err)
		}
		if sum.Add != 1 || len(sum.Resources) != 1 || sum.Resources[0].Address != "terraform_data.a[0]" {
			t.Fatalf("summary = %+v, want one creation", sum)
		}
	})
	t.Run("error diagnostics read as the CLI prints them, redacted", func(t *testing.T) {
		st := newUIStream(redact, nil)
		fmt.Fprintln(st, lock)
		fmt.Fprintln(st, leaky)
		fmt.Fprintln(st, warning)
		err := st.failed(errors.New("exit status 1\n"))
		msg := err.Error()
		if !isStateLocked(msg) || parseLockInfo(msg).Who != "me@host" || parseLockInfo(msg).ID != "1234" {
			t.Fatalf("error %q: want the lock and its holder readable", msg)
		}
		if !isConfigError("Error: Invalid function argument\n") || !slices.Contains(diagnosticSummaries(msg), "Invalid function argument") {
			t.Fatalf("error %q: want the summaries classify.go reads", msg)
		}
		if !strings.Contains(msg, `var.pw is "[REDACTED]"`) || strings.Contains(msg, "hunter2") || strings.Contains(msg, "Deprecated") {
			t.Fatalf("error %q: want the value redacted and no warning", msg)
		}
		if !strings.Contains(msg, "on main.tf line 7, in resource") {
			t.Fatalf("error %q: want where the error is", msg)
		}
	})
	t.Run("diagnostics are kept up to a cap", func(t *testing.T) {
		st := newUIStream(redact, nil)
		for range 200 {
			fmt.Fprintln(st, lock)
		}
		msg := st.failed(errors.New("exit status 1")).Error()
		if len(msg) > maxErrorBytes+200 || !strings.Contains(msg, "more errors") {
			t.Fatalf("error of %d bytes, want at most about %d and a count of those left out", len(msg), maxErrorBytes)
		}
	})
	t.Run("an overlong message fails the stream, which is still drained", func(t *testing.T) {
		st := newUIStream(redact, nil)
		big := bytes.Repeat([]byte("x"), 1<<20)
		for range maxStreamLine/len(big) + 1 {
			if n, err := st.Write(big); n != len(big) || err != nil {
				t.Fatalf("write = %d, %v", n, err)
			}
		}
		if n, err := st.Write([]byte("\n" + summary + "\n")); n == 0 || err != nil {
			t.Fatalf("write = %d, %v", n, err)
		}
		if err := st.finish(); !errors.Is(err, errStream) {
			t.Fatalf("finish = %v, want errStream", err)
		}
	})
	t.Run("a plan without its summary is refused", func(t *testing.T) {
		var p planStream
		st := newUIStream(redact, p.message)
		fmt.Fprintln(st, change)
		var sum taskspec.TerraformPlanSummary
		if err := p.summarize(&sum, false, planInputs{}); !errors.Is(err, errStream) {
			t.Fatalf("summarize = %v, want errStream", err)
		}
	})
	t.Run("changes that do not add up to the summary are refused", func(t *testing.T) {
		var p planStream
		st := newUIStream(redact, p.message)
		fmt.Fprintln(st, strings.Replace(summary, `"remove":0`, `"remove":1`, 1))
		fmt.Fprintln(st, change)
		var sum taskspec.TerraformPlanSummary
		if err := p.summarize(&sum, false, planInputs{}); !errors.Is(err, errStream) {
			t.Fatalf("summarize = %v, want errStream", err)
		}
	})
	t.Run("a large plan lists the first resources and counts all", func(t *testing.T) {
		var p planStream
		st := newUIStream(redact, p.message)
		n := taskspec.MaxPlanResources + 500
		for i := range n {
			fmt.Fprintln(st, strings.ReplaceAll(strings.ReplaceAll(change, "a[0]", fmt.Sprintf("a[%d]", n-1-i)), `"resource_key":0`, fmt.Sprintf(`"resource_key":%d`, n-1-i)))
		}
		fmt.Fprintln(st, strings.Replace(summary, `"add":1`, fmt.Sprintf(`"add":%d`, n), 1))
		var sum taskspec.TerraformPlanSummary
		if err := p.summarize(&sum, false, planInputs{}); err != nil {
			t.Fatal(err)
		}
		if sum.Add != n || len(sum.Resources) != taskspec.MaxPlanResources || sum.Omitted != 500 || sum.Resources[0].Address != "terraform_data.a[0]" || sum.Resources[10].Address != "terraform_data.a[10]" {
			t.Fatalf("add %d, %d resources listed from %v, want %d counted, %d listed in plan order, 500 omitted (got %d)", sum.Add, len(sum.Resources), sum.Resources[:11], n, taskspec.MaxPlanResources, sum.Omitted)
		}
	})
}

func TestParseModuleInstance(t *testing.T) {
	tests := []struct {
		in   string
		want []moduleStep
		ok   bool
	}{
		{"", nil, true},
		{"module.a", []moduleStep{{name: "a"}}, true},
		{`module.a[0].module.b["k"]`, []moduleStep{{name: "a", key: instanceKey{kind: keyInt}}, {name: "b", key: instanceKey{kind: keyString, s: "k"}}}, true},
		{`module.a["x\"].y[1]"]`, []moduleStep{{name: "a", key: instanceKey{kind: keyString, s: `x"].y[1]`}}}, true},
		{`module.a["$${t}\u00ff\\"]`, []moduleStep{{name: "a", key: instanceKey{kind: keyString, s: `${t}ÿ\`}}}, true},
		{"module.a.", nil, false},
		{"module.a[x]", nil, false},
		{`module.a["x"`, nil, false},
		{"aws_instance.a", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := parseModuleInstance(tt.in)
			if ok != tt.ok || !slices.Equal(got, tt.want) {
				t.Fatalf("parseModuleInstance(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func FuzzParseModuleInstance(f *testing.F) {
	f.Add(`module.a[0].module.b["k\"]"]`)
	f.Add("module.a")
	f.Fuzz(func(t *testing.T, s string) {
		steps, ok := parseModuleInstance(s)
		if ok && s != "" && len(steps) == 0 {
			t.Fatalf("%q parsed to no steps", s)
		}
	})
}
