package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/outposthq/outpost/internal/tofutest"
)

// The demo's terraform release.
const (
	infraRelease     = "infra"
	infraReleaseFile = "infra-release.yaml"
	infraModuleDir   = "infra-module"
	// infraStateSecret is the kubernetes backend's state of the release's
	// workspace, in the agent's namespace.
	infraStateSecret = "tfstate-default-" + infraRelease
	// terraformDriftInterval is how often the demo's agent plans terraform
	// releases for drift (an hour by default).
	terraformDriftInterval = "5s"
	terraformTimeout       = 3 * time.Minute
)

// infraModule is an OpenTofu module of built-in resources only, so nothing
// is downloaded: a database record, a volume replaced whenever its
// generation changes, and a connection string built from a secret.
const infraModule = `variable "size" {
  type = number
}

variable "generation" {
  type = number
}

variable "api_token" {
  type      = string
  sensitive = true
}

resource "terraform_data" "db" {
  input = { size = var.size, engine = "postgres" }
}

resource "terraform_data" "volume" {
  triggers_replace = [var.generation]
  input            = "volume-${var.generation}"
}

output "db_size" {
  value = terraform_data.db.output.size
}

output "volume" {
  value = terraform_data.volume.output
}

output "api_header" {
  value     = "Bearer ${var.api_token}"
  sensitive = true
}
`

// infraReleaseDoc is the release file of module generation gen.
func infraReleaseDoc(generation int) string {
	return fmt.Sprintf(`apiVersion: outpost.dev/v1
kind: Release
metadata:
  name: %s
  environment: %s
spec:
  description: the shop's database and volume, as an OpenTofu module
  terraform:
    module: ./%s
    approval: destroy            # a plan that destroys or replaces waits for an operator
    variables:
      size: 20
      generation: %d
    sensitiveVariables:
      api_token: %s   # resolved on the agent, never sent to the hub
`, infraRelease, envName, infraModuleDir, generation, vaultRef)
}

// terraformRelease applies an OpenTofu module as a release, shows its plan,
// outputs and state Secret, lets the scheduled plan find a change made
// behind its back, and holds a replacement until it is approved.
func (d *demo) terraformRelease(ctx context.Context) error {
	d.out.step("A Terraform release: an OpenTofu module run by the agent, its state in a Secret of the cluster")
	if err := os.MkdirAll(d.path(infraModuleDir), 0o700); err != nil {
		return fmt.Errorf("write the module: %w", err)
	}
	if err := os.WriteFile(filepath.Join(d.path(infraModuleDir), "main.tf"), []byte(infraModule), 0o600); err != nil {
		return fmt.Errorf("write the module: %w", err)
	}
	if err := d.writeInfraRelease(1); err != nil {
		return err
	}
	if _, err := d.cli(ctx, "release", "apply", "-f", d.path(infraReleaseFile), "--wait", "--timeout", terraformTimeout.String()); err != nil {
		return err
	}
	if _, err := d.cli(ctx, "release", "get", infraRelease, "--env", envName); err != nil {
		return err
	}
	state, err := d.cluster.Client.CoreV1().Secrets(agentNamespace).Get(ctx, infraStateSecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the state Secret: %w", err)
	}
	d.out.ok("state in Secret %s/%s (%d bytes, gzip'd); the agent keeps no file, and a killed apply's lock is taken over only once its holder is provably gone",
		agentNamespace, infraStateSecret, len(state.Data["tfstate"]))

	d.out.say("someone changes the database behind the agent's back (here: its recorded size in the state)")
	if err := d.editInfraState(ctx); err != nil {
		return err
	}
	if err := d.waitRelease(ctx, "drifted"); err != nil {
		return fmt.Errorf("the scheduled plan did not find the change: %w", err)
	}
	d.out.ok("the scheduled plan (every %s here, hourly by default) found terraform_data.db changed; terraform releases detect by default, `mode: correct` re-applies", terraformDriftInterval)

	d.out.say("generation 2 replaces the volume: a destroy, which this release's approval policy holds")
	if err := d.writeInfraRelease(2); err != nil {
		return err
	}
	if _, err := d.cli(ctx, "release", "apply", "-f", d.path(infraReleaseFile)); err != nil {
		return err
	}
	if err := d.waitRelease(ctx, "awaiting-approval"); err != nil {
		return err
	}
	d.out.ok("the plan waits: nothing was changed; an operator reviews it and approves exactly that plan (its digest)")
	if _, err := d.cli(ctx, "release", "approve", infraRelease, "--env", envName, "--yes", "--wait", "--timeout", terraformTimeout.String()); err != nil {
		return err
	}
	_, err = d.cli(ctx, "release", "history", infraRelease, "--env", envName)
	return err
}

func (d *demo) writeInfraRelease(generation int) error {
	if err := os.WriteFile(d.path(infraReleaseFile), []byte(infraReleaseDoc(generation)), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", infraReleaseFile, err)
	}
	return nil
}

// editInfraState changes terraform_data.db's recorded size in the state
// Secret, as a change made outside Outpost would.
func (d *demo) editInfraState(ctx context.Context) error {
	edited := false
	err := tofutest.EditState(ctx, d.cluster.Client, agentNamespace, infraRelease, func(state map[string]any) {
		if attrs := tofutest.Attributes(state, "terraform_data", "db"); attrs != nil {
			attrs["input"] = map[string]any{
				"value": map[string]any{"size": 50, "engine": "postgres"},
				"type":  []any{"object", map[string]any{"size": "number", "engine": "string"}},
			}
			edited = true
		}
	})
	if err != nil {
		return err
	}
	if !edited {
		return errors.New("state Secret: no terraform_data.db instance to change")
	}
	return nil
}

// waitRelease polls `outpost release get infra` until its output says
// word, then shows it.
func (d *demo) waitRelease(ctx context.Context, word string) error {
	deadline := time.Now().Add(terraformTimeout)
	for time.Now().Before(deadline) {
		out, err := d.exec(ctx, cliBinary, "", "release", "get", infraRelease, "--env", envName)
		if err == nil && strings.Contains(out.stdout, word) {
			d.out.command(d.binaryShown(cliBinary), "release", "get", infraRelease, "--env", envName)
			d.out.block(out.shown())
			return nil
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("release %s did not become %q within %v", infraRelease, word, terraformTimeout)
}
