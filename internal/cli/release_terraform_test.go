package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/archive"
	"github.com/outposthq/outpost/internal/taskspec"
)

// terraformHeader starts a release file of release net, a name the
// fake hub's seeded releases do not use.
var terraformHeader = strings.Replace(releaseHeader, "name: web", "name: net", 1)

// terraformRelease is a release file of release net from the module
// directory ./infra.
var terraformRelease = terraformHeader + `spec:
  description: network and database
  terraform:
    module: infra
    variables:
      region: eu-west-1
      sizes: [2, 4]
      tags: {team: shop}
    sensitiveVariables:
      db_password: vault://k8s/db/password
    approval: destroy
    timeout: 30m
`

// moduleDir writes a module directory, with what must not be packed
// beside it, into dir/infra, every file modified at.
func moduleDir(t *testing.T, dir string, at time.Time) {
	t.Helper()
	files := map[string]string{
		"main.tf":                           `resource "null_resource" "x" {}` + "\n",
		"variables.tf":                      `variable "region" {}` + "\n",
		"modules/net/main.tf":               `output "id" { value = "net" }` + "\n",
		".terraform.lock.hcl":               "# lock\n",
		".terraform/providers/null/binary":  "not a module file",
		"terraform.tfstate":                 `{"secret":"state"}`,
		"terraform.tfstate.backup":          `{"secret":"state"}`,
		"secrets.auto.tfvars":               `db_password = "hunter2"`,
		".git/HEAD":                         "ref: refs/heads/main\n",
		"terraform.tfstate.d/prod/state.tf": "x",
	}
	for name, content := range files {
		p := filepath.Join(dir, "infra", filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReleaseApplyTerraform(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	moduleDir(t, h.dir, time.Unix(1000, 0))
	path := writeRelease(t, h.dir, "release.yaml", terraformRelease)
	first := h.mustRun("release", "apply", "-f", path)
	// The same module with other modification times packs the same.
	moduleDir(t, h.dir, time.Unix(2000, 0))
	h.mustRun("release", "apply", "-f", path)
	reqs := h.hub.appliedRequests()
	if len(reqs) != 2 {
		t.Fatalf("the hub got %d ApplyRelease calls, want 2", len(reqs))
	}
	req := reqs[0]

	t.Run("the module directory is packed reproducibly and sent as an artifact", func(t *testing.T) {
		if !proto.Equal(reqs[0], reqs[1]) {
			t.Errorf("the two requests differ:\n%v\n%v", reqs[0], reqs[1])
		}
		if len(req.GetArtifacts()) != 1 || h.hub.artifacts[req.GetArtifacts()[0]] == nil {
			t.Fatalf("artifacts %v, want the uploaded module archive", req.GetArtifacts())
		}
		files, err := archive.ReadTarGz(bytes.NewReader(h.hub.artifacts[req.GetArtifacts()[0]]), archive.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range files {
			names = append(names, f.Name)
		}
		want := []string{".terraform.lock.hcl", "main.tf", "modules/net/main.tf", "variables.tf"}
		if !slices.Equal(names, want) {
			t.Errorf("archive holds %v, want %v (no state, caches, version control or variable files)", names, want)
		}
		if !strings.Contains(first.stderr, "left out") || !strings.Contains(first.stderr, "secrets.auto.tfvars") {
			t.Errorf("stderr does not say what was left out: %q", first.stderr)
		}
	})
	t.Run("the request is a terraform release in detect mode on the workspace named after it", func(t *testing.T) {
		if req.GetKind() != taskspec.KindTerraform || req.GetMode() != v1.ReleaseMode_RELEASE_MODE_DETECT || req.GetDescription() != "network and database" {
			t.Fatalf("request = %v", req)
		}
		var spec taskspec.Terraform
		if err := taskspec.DecodeStrict(req.GetSpec(), &spec); err != nil {
			t.Fatal(err)
		}
		if spec.Workspace != "net" || spec.Artifact != req.GetArtifacts()[0] || spec.Approval != taskspec.ApprovalDestroy ||
			spec.TimeoutSeconds != 1800 || spec.SensitiveVariables["db_password"] != "vault://k8s/db/password" || spec.Action != "" {
			t.Errorf("spec = %+v", spec)
		}
		for name, want := range map[string]string{"region": `"eu-west-1"`, "sizes": `[2,4]`, "tags": `{"team":"shop"}`} {
			if got := string(spec.Variables[name]); got != want {
				t.Errorf("variables.%s = %s, want %s", name, got, want)
			}
		}
		if strings.Contains(string(req.GetSpec()), "hunter2") {
			t.Error("the spec carries the variable file's secret")
		}
	})
}

func TestReleaseApplyTerraformWaitStopsAtAHeldPlan(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	h.hub.scriptRelease("prod", "net", v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL)
	path := writeRelease(t, h.dir, "release.yaml", terraformHeader+"spec:\n  terraform:\n    url: https://example.com/m.tar.gz\n    approval: always\n")
	r := h.run("release", "apply", "-f", path, "--wait", "--timeout", "5s")
	if got := ExitCode(r.err); got != ExitFailure {
		t.Fatalf("exit code %d (%v), want %d", got, r.err, ExitFailure)
	}
	assertErrorContains(t, r.err, "release awaits approval: net revision 1", "outpost release approve net --env prod")
}

func TestReleaseApplyTerraformSources(t *testing.T) {
	t.Parallel()
	uploaded := "sha256:" + strings.Repeat("c", 64)
	tests := []struct {
		name      string
		source    string
		artifacts []string
	}{
		{"a url travels in the spec, with nothing uploaded", "url: oci://registry.example/modules/infra:1.2.0", nil},
		{"an uploaded artifact is named in the spec and the request", "artifact: " + uploaded, []string{uploaded}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.hub.artifacts[uploaded] = []byte("module")
			h.mustRun("release", "apply", "-f", writeRelease(t, h.dir, "release.yaml", terraformHeader+"spec:\n  mode: correct\n  terraform:\n    "+tt.source+"\n"))
			req := h.hub.appliedRequests()[0]
			if !slices.Equal(req.GetArtifacts(), tt.artifacts) || len(h.hub.headers) != 0 {
				t.Errorf("artifacts %v uploads %d, want %v and none", req.GetArtifacts(), len(h.hub.headers), tt.artifacts)
			}
			if req.GetMode() != v1.ReleaseMode_RELEASE_MODE_CORRECT {
				t.Errorf("mode %v, want the explicit correct", req.GetMode())
			}
		})
	}
}

func TestReleaseApproveTerraform(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		terminal bool
		stdin    string
		args     []string
		approved bool
		want     string
	}{
		{name: "without a terminal to ask on, --yes is required", want: "pass --yes"},
		{name: "on a terminal, n approves nothing", terminal: true, stdin: "n\n", want: "not confirmed; nothing was approved"},
		{name: "on a terminal, y approves the plan shown", terminal: true, stdin: "y\n", approved: true},
		{name: "--yes approves without asking", args: []string{"--yes"}, approved: true},
		{name: "--revision names the revision awaiting approval", args: []string{"--yes", "--revision", "2"}, approved: true},
		{name: "another revision is refused before anything is sent", args: []string{"--yes", "--revision", "1"}, want: "revision 2 of release infra awaits approval, not 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t).login()
			h.hub.seedTerraform()
			h.terminal, h.stdin = tt.terminal, tt.stdin
			r := h.run(append([]string{"release", "approve", "infra", "--env", "prod"}, tt.args...)...)
			sent := h.hub.approvalsSent()
			if !tt.approved {
				assertErrorContains(t, r.err, tt.want)
				if len(sent) != 0 {
					t.Fatalf("%d approvals sent, want none", len(sent))
				}
				return
			}
			if r.err != nil {
				t.Fatalf("%v\n%s", r.err, r.stderr)
			}
			want := &v1.ApproveReleaseRequest{Environment: "prod", Name: "infra", Revision: 2, PlanDigest: heldPlanDigest}
			if len(sent) != 1 || !proto.Equal(sent[0], want) {
				t.Fatalf("approvals sent = %v, want %v", sent, want)
			}
			for _, line := range []string{
				"Plan of release infra (prod), revision 2: 1 to add, 1 to change, 2 to destroy.",
				"  -/+ aws_db_instance.main  <= REPLACE: destroys aws_db_instance.main",
				"  ~   aws_s3_bucket.logs  (update)",
				"  -   aws_instance.old  <= DELETE: destroys aws_instance.old",
				"This plan DESTROYS 2 resources.",
				"Plan digest: " + heldPlanDigest,
				"release infra: plan bbbbbbbbbbbb of revision 2 approved; the agent applies it (task rt-infra-2-approved)",
			} {
				if !strings.Contains(r.stdout, line) {
					t.Errorf("stdout lacks %q:\n%s", line, r.stdout)
				}
			}
			if tt.terminal && !strings.Contains(r.stderr, "Apply this plan of release infra to prod (1 to add, 1 to change, 2 to destroy)?") {
				t.Errorf("stderr = %q, want the question", r.stderr)
			}
		})
	}
}

func TestReleaseApproveRefusals(t *testing.T) {
	t.Parallel()
	t.Run("a release not awaiting approval has nothing to approve", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		r := h.run("release", "approve", "web", "--env", "prod", "--yes")
		assertErrorContains(t, r.err, "release web in prod is drifted: no plan awaits approval")
		if len(h.hub.approvalsSent()) != 0 {
			t.Fatal("an approval was sent")
		}
	})
	t.Run("a plan that changed after it was shown is refused by the hub", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t).login()
		h.hub.seedTerraform()
		h.hub.replanBeforeApproval = true
		r := h.run("release", "approve", "infra", "--env", "prod", "--yes")
		assertErrorContains(t, r.err, "the plan changed since you reviewed it")
		if sent := h.hub.approvalsSent(); len(sent) != 1 || sent[0].GetPlanDigest() != heldPlanDigest {
			t.Fatalf("approvals sent = %v, want the digest of the plan shown", sent)
		}
	})
	t.Run("--wait reports the applied revision, or a new plan awaiting approval as a failure", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			states []v1.ReleaseSync
			code   int
			want   string
		}{
			{[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL, v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_IN_SYNC}, ExitOK, "release infra: revision 2 applied, in-sync"},
			{[]v1.ReleaseSync{v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL, v1.ReleaseSync_RELEASE_SYNC_PENDING, v1.ReleaseSync_RELEASE_SYNC_AWAITING_APPROVAL}, ExitFailure, "release awaits approval: infra revision 2"},
		} {
			h := newHarness(t).login()
			h.hub.seedTerraform()
			h.hub.scriptRelease("prod", "infra", tc.states...)
			r := h.run("release", "approve", "infra", "--env", "prod", "--yes", "--wait", "--timeout", "5s")
			if got := ExitCode(r.err); got != tc.code {
				t.Fatalf("exit code %d (%v), want %d", got, r.err, tc.code)
			}
			if out := r.stdout + errString(r.err); !strings.Contains(out, tc.want) {
				t.Errorf("output %q does not contain %q", out, tc.want)
			}
		}
	})
}

func TestReleaseViewsOfTerraform(t *testing.T) {
	t.Parallel()
	h := newHarness(t).login()
	h.hub.seedTerraform()
	t.Run("get shows the wanted revision's plan and the applied revision's outputs", func(t *testing.T) {
		r := h.mustRun("release", "get", "infra", "--env", "prod")
		golden(t, "release_get_terraform", "$ outpost release get infra --env prod\n"+r.stdout)
	})
	t.Run("history shows each revision's plan counts", func(t *testing.T) {
		r := h.mustRun("release", "history", "infra", "--env", "prod")
		golden(t, "release_history_terraform", "$ outpost release history infra --env prod\n"+r.stdout)
	})
	t.Run("-o json gives the revision's plan", func(t *testing.T) {
		r := h.mustRun("release", "get", "infra", "--env", "prod", "-o", "json")
		var got struct {
			Revision struct{ Plan struct{ Digest string } }
		}
		if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || got.Revision.Plan.Digest != heldPlanDigest {
			t.Errorf("json = %s (%v)", r.stdout, err)
		}
	})
}

func TestPlanLinesSayWhatTheyLeaveOut(t *testing.T) {
	p := &v1.PlanSummary{Add: 1500, Omitted: 500, Resources: []*v1.ResourceChange{{Address: "terraform_data.a[0]", Action: "create"}}}
	lines := planLines(p)
	if last := lines[len(lines)-1]; !strings.Contains(last, "500 more changed resources NOT LISTED") || !strings.Contains(last, "the first 1") {
		t.Fatalf("last line %q, want it to say 500 more are not listed", last)
	}
	if lines := planLines(&v1.PlanSummary{Add: 1, Resources: p.GetResources()}); len(lines) != 1 {
		t.Fatalf("lines %q, want one line for a full list", lines)
	}
}
