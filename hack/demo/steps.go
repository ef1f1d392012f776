package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/internal/taskspec"
	"github.com/outposthq/outpost/internal/transport"
)

// pollInterval is the pause between checks while waiting for the hub or
// the agent.
const pollInterval = 200 * time.Millisecond

// prepare makes the state directory and the children's environment.
func (d *demo) prepare(context.Context) error {
	bin, err := filepath.Abs(d.opts.binDir)
	if err != nil {
		return fmt.Errorf("bin directory: %w", err)
	}
	d.bin = bin
	if d.dir, err = makeStateDir(d.opts.stateDir); err != nil {
		return err
	}
	d.env = childEnv(os.Environ(), "OUTPOST_CONFIG="+d.path(cliConfigFile))
	d.out.step("State directory")
	d.out.say("%s=%s", stateDirVar, d.dir)
	d.out.say("holds the hub's database, TLS files, the CLI config, the agent's vault and the logs;")
	d.out.say("the commands below refer to it as $%s", stateDirVar)
	d.out.dir = d.dir
	return nil
}

// startHub starts outpost-hub on SQLite with a development CA and waits
// until it is ready.
func (d *demo) startHub(ctx context.Context) error {
	d.out.step("Starting the hub")
	addr, moved, err := pickAddr(d.opts.listen)
	if err != nil {
		return err
	}
	if moved {
		d.out.say("%s is taken; using %s instead", d.opts.listen, addr)
	}
	d.hubAddr, d.hubURL = addr, hubURLFor(addr)
	args := []string{"serve", "--db", d.path(hubDBFile), "--listen", addr, "--dev-tls-dir", d.path(tlsDir)}
	d.out.command(append([]string{d.binaryShown(hubBinary)}, args...)...)
	if d.hub, err = startProcess("hub", d.path(hubLogFile), d.binary(hubBinary), d.env, args...); err != nil {
		return err
	}
	if err := d.waitHubReady(ctx); err != nil {
		return err
	}
	d.out.ok("hub ready at %s (pid %d); it made a throw-away CA in %s", d.hubURL, d.hub.pid(), d.out.path(d.path(caFile)))
	return nil
}

// waitHubReady polls /readyz, trusting the development CA once the hub has
// written it.
func (d *demo) waitHubReady(ctx context.Context) error {
	deadline := time.Now().Add(readyTimeout)
	var client *http.Client
	last := errors.New("the hub has not written its CA yet")
	for {
		select {
		case <-d.hub.exited():
			return fmt.Errorf("the hub stopped while starting: %w", d.hub.exitError())
		default:
		}
		if client == nil {
			if _, err := os.Stat(d.path(caFile)); err == nil {
				// The CA may still be half written; try again next round.
				client, last = transport.NewClient(transport.Options{CAFile: d.path(caFile)})
			}
		}
		if client != nil {
			if last = probe(ctx, client, d.hubURL+"/readyz"); last == nil {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the hub was not ready within %v: %w", readyTimeout, last)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return err
		}
	}
}

// probe GETs url and wants 200.
func probe(ctx context.Context, client *http.Client, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// login mints the tenant's first operator token with outpost-hub (which
// talks to the database directly) and logs the CLI in with it.
func (d *demo) login(ctx context.Context) error {
	d.out.step("Creating an operator token and logging in")
	args := []string{"admin", "token", "--tenant", tenant, "--db", d.path(hubDBFile)}
	d.out.command(append([]string{d.binaryShown(hubBinary)}, args...)...)
	out, err := d.exec(ctx, hubBinary, "", args...)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(out.stdout)
	if token == "" {
		return errors.New("`outpost-hub admin token` printed no token")
	}
	d.out.say("(prints an API token for tenant %q; it goes to the CLI on stdin, below)", tenant)
	args = []string{"login", "--hub", d.hubURL, "--token", "-", "--ca-file", d.path(caFile)}
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	if out, err = d.exec(ctx, cliBinary, token+"\n", args...); err != nil {
		return err
	}
	d.out.block(out.shown())
	return nil
}

// createEnvironment creates the environment and a bootstrap token for its
// agent, which it writes to a 0600 file.
func (d *demo) createEnvironment(ctx context.Context) error {
	d.out.step("Creating environment %s and a bootstrap token for its agent", envName)
	if _, err := d.cli(ctx, "env", "create", envName); err != nil {
		return err
	}
	args := []string{"token", "create", "--env", envName, "-o", "json"}
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	out, err := d.exec(ctx, cliBinary, "", args...)
	if err != nil {
		return err
	}
	d.out.block(out.stderr)
	tok := &v1.CreateBootstrapTokenResponse{}
	if err := protojson.Unmarshal([]byte(out.stdout), tok); err != nil {
		return fmt.Errorf("read the output of `outpost token create -o json`: %w", err)
	}
	if tok.GetToken() == "" {
		return errors.New("`outpost token create -o json` printed no token")
	}
	d.environment = tok.GetEnvironment()
	if d.environment == "" {
		d.environment = tenant + "/" + envName
	}
	if err := os.WriteFile(d.path(bootstrapFile), []byte(tok.GetToken()+"\n"), 0o600); err != nil {
		return fmt.Errorf("write bootstrap token: %w", err)
	}
	d.out.ok("single-use token for %s, valid until %s, saved to %s (mode 0600)",
		d.environment, tok.GetExpiresAt().AsTime().Local().Format(time.TimeOnly), d.out.path(d.path(bootstrapFile)))
	return nil
}

// startPayments starts the customer's internal API with a fresh secret.
func (d *demo) startPayments(context.Context) error {
	d.out.step("Starting the customer's payments API")
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	d.secret = "sk_demo_" + hex.EncodeToString(b)
	api, err := startPayments(d.secret)
	if err != nil {
		return err
	}
	d.api = api
	d.out.say("stands in for a service inside the customer's network that only the agent can reach")
	d.out.ok("POST %s/v1/rotate-keys wants Authorization: Bearer <a random token>", api.url)
	d.out.say("and, carelessly, echoes that header back in %s and in its JSON body", echoHeader)
	return nil
}

// startAgent writes the agent's vault, starts the agent with the bootstrap
// token and waits until the hub sees it connected.
func (d *demo) startAgent(ctx context.Context) error {
	d.out.step("Starting an agent in %s", d.environment)
	vault, err := json.Marshal(map[string]map[string]string{vaultPath: {vaultKey: d.secret}})
	if err != nil {
		return fmt.Errorf("encode vault: %w", err)
	}
	if err := os.WriteFile(d.path(vaultFile), vault, 0o600); err != nil {
		return fmt.Errorf("write vault: %w", err)
	}
	d.out.ok("local vault %s (mode 0600): {%q: {%q: \"<the payments token>\"}}", d.out.path(d.path(vaultFile)), vaultPath, vaultKey)
	args := []string{
		"--hub", d.hubURL, "--ca-file", d.path(caFile),
		"--bootstrap-token-file", d.path(bootstrapFile), "--environment", d.environment,
		"--vault-file", d.path(vaultFile),
		"--kubeconfig", d.path(agentKubeconfig), "--namespace", agentNamespace,
		"--tofu", d.opts.tofu, "--terraform-drift-interval", terraformDriftInterval,
	}
	d.out.command(append([]string{d.binaryShown(agentBinary)}, args...)...)
	if d.agent, err = startProcess("agent", d.path(agentLogFile), d.binary(agentBinary), d.env, args...); err != nil {
		return err
	}
	agent, err := d.waitAgentConnected(ctx)
	if err != nil {
		return err
	}
	d.agentID = agent.GetId()
	d.out.ok("agent %s enrolled and connected (pid %d)", agent.GetId(), d.agent.pid())
	d.out.say("it dialled out to the hub and listens on no port; its key is in Secret %s/%s", agentNamespace, identitySecret)
	return nil
}

// waitAgentConnected polls `outpost agent list` until an agent of the
// environment is connected.
func (d *demo) waitAgentConnected(ctx context.Context) (*v1.Agent, error) {
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-d.agent.exited():
			return nil, fmt.Errorf("the agent stopped while enrolling: %w", d.agent.exitError())
		default:
		}
		out, err := d.exec(ctx, cliBinary, "", "agent", "list", "--env", envName, "-o", "json")
		if err == nil {
			list := &v1.ListAgentsResponse{}
			if err = protojson.Unmarshal([]byte(out.stdout), list); err == nil {
				for _, a := range list.GetAgents() {
					if a.GetConnected() && !a.GetDisabled() {
						return a, nil
					}
				}
				err = fmt.Errorf("%d agents enrolled, none connected yet", len(list.GetAgents()))
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the agent did not connect within %v: %w", readyTimeout, err)
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return nil, err
		}
	}
}

// taskSpec is the http task the demo runs: the credential is a vault
// reference that only the agent resolves.
func (d *demo) taskSpec() (string, error) {
	spec := taskspec.HTTP{
		Method:  http.MethodPost,
		URL:     d.api.url + "/v1/rotate-keys",
		Headers: map[string]string{"Authorization": "Bearer ${" + vaultRef + "}"},
	}
	if err := spec.Validate(); err != nil {
		return "", fmt.Errorf("the demo's task spec: %w", err)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encode task spec: %w", err)
	}
	return string(b), nil
}

// runTask queues the http task with the CLI and waits for it.
func (d *demo) runTask(ctx context.Context) error {
	d.out.step("Running a task: rotate the payments keys, with the token from the agent's vault")
	spec, err := d.taskSpec()
	if err != nil {
		return err
	}
	d.specJSON = spec
	args := []string{"task", "run", "--env", envName, "--kind", taskspec.KindHTTP, "--spec-json", spec,
		"--conflict-key", conflictKey, "--wait", "-o", "json"}
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	d.out.say("the hub stores and forwards only the reference %s; the agent resolves it just before the call", vaultRef)
	tctx, cancel := context.WithTimeout(ctx, taskTimeout)
	defer cancel()
	out, err := d.exec(tctx, cliBinary, "", args...)
	d.out.block(out.stderr)
	task := &v1.Task{}
	if perr := protojson.Unmarshal([]byte(out.stdout), task); perr == nil && task.GetId() != "" {
		d.task = task
		d.taskOutputs["the task as `outpost task run -o json` printed it"] = out.stdout
	}
	switch {
	case tctx.Err() != nil && ctx.Err() == nil:
		return fmt.Errorf("the task did not finish within %v; the agent's log says why", taskTimeout)
	case err != nil:
		return err
	case d.task == nil:
		return errors.New("`outpost task run -o json` printed no task")
	}
	d.out.ok("task %s %s on attempt %d, run by agent %s",
		task.GetId(), strings.ToLower(strings.TrimPrefix(task.GetState().String(), "TASK_STATE_")), task.GetAttempt(), task.GetAgentId())
	return nil
}

// inspect shows the task, the agents and the audit chain as the CLI sees
// them.
func (d *demo) inspect(ctx context.Context) error {
	d.out.step("What the hub recorded")
	out, err := d.cli(ctx, "task", "get", d.task.GetId())
	if err != nil {
		return err
	}
	d.taskOutputs["the task as `outpost task get` printed it"] = out.stdout
	if _, err := d.cli(ctx, "agent", "list"); err != nil {
		return err
	}
	if _, err := d.cli(ctx, "audit", "verify"); err != nil {
		return err
	}
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
