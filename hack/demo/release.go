package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The demo's release and sealed secret.
const (
	catalogRelease     = "catalog"
	catalogImage       = "ghcr.io/example/catalog:2.3.0"
	catalogHandEdit    = "ghcr.io/example/catalog:hotfix-by-hand"
	catalogSecret      = "catalog-db"
	catalogReleaseFile = "catalog-release.yaml"
	catalogBundleFile  = "catalog.yaml"
	driftTimeout       = 30 * time.Second
	restartAnnotation  = "outpost.dev/restart-on-secrets"
	checksumAnnotation = "outpost.dev/secrets-checksum"
)

var catalogBundle = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: catalog
  annotations:
    ` + restartAnnotation + `: ` + catalogSecret + `
spec:
  replicas: 2
  selector:
    matchLabels: {app: catalog}
  template:
    metadata:
      labels: {app: catalog}
    spec:
      containers:
      - name: catalog
        image: ` + catalogImage + `
`

var catalogReleaseDoc = `apiVersion: outpost.dev/v1
kind: Release
metadata:
  name: ` + catalogRelease + `
  environment: ` + envName + `
spec:
  description: the catalog service, kept in sync by the agent
  ignore:
  - group: apps
    kind: Deployment
    paths: ["/spec/replicas"]   # an autoscaler may own it
  manifests:
    namespace: ` + appNamespace + `
    files: [` + catalogBundleFile + `]
`

// reconcileDrift applies a release, edits one of its objects by hand as
// an operator in a hurry would, and shows the agent putting it back.
func (d *demo) reconcileDrift(ctx context.Context) error {
	d.out.step("A release: desired state the agent keeps in place (release apply, then a hand edit)")
	for name, doc := range map[string]string{catalogBundleFile: catalogBundle, catalogReleaseFile: catalogReleaseDoc} {
		if err := os.WriteFile(d.path(name), []byte(doc), 0o600); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	if _, err := d.cli(ctx, "release", "apply", "-f", d.path(catalogReleaseFile), "--wait", "--timeout", "2m"); err != nil {
		return err
	}
	d.out.say("the agent now watches the release's objects and compares the fields it applied")

	deployments := d.cluster.Client.AppsV1().Deployments(appNamespace)
	cur, err := deployments.Get(ctx, catalogRelease, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read the catalog Deployment: %w", err)
	}
	cur.Spec.Template.Spec.Containers[0].Image = catalogHandEdit
	d.out.say("someone edits the Deployment by hand: image %s → %s", catalogImage, catalogHandEdit)
	if _, err := deployments.Update(ctx, cur, metav1.UpdateOptions{FieldManager: "kubectl-edit"}); err != nil {
		return fmt.Errorf("edit the catalog Deployment: %w", err)
	}
	edited := time.Now()
	restored, err := d.waitDeployment(ctx, func(dep *appsv1.Deployment) bool {
		return dep.Spec.Template.Spec.Containers[0].Image == catalogImage
	})
	if err != nil {
		return fmt.Errorf("the agent did not correct the hand edit: %w", err)
	}
	d.out.ok("corrected %v after the edit: image %s again", time.Since(edited).Round(time.Millisecond), restored.Spec.Template.Spec.Containers[0].Image)
	if err := d.waitHubSees(ctx); err != nil {
		return err
	}
	_, err = d.cli(ctx, "release", "get", catalogRelease, "--env", envName)
	return err
}

// waitHubSees waits until the hub has the agent's drift report.
func (d *demo) waitHubSees(ctx context.Context) error {
	deadline := time.Now().Add(driftTimeout)
	for time.Now().Before(deadline) {
		out, err := d.exec(ctx, cliBinary, "", "release", "get", catalogRelease, "--env", envName)
		if err == nil && strings.Contains(out.stdout, "corrected") {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the hub did not record the correction of release %s within %v", catalogRelease, driftTimeout)
}

// waitDeployment polls the catalog Deployment until ok holds.
func (d *demo) waitDeployment(ctx context.Context, ok func(*appsv1.Deployment) bool) (*appsv1.Deployment, error) {
	deadline := time.Now().Add(driftTimeout)
	for time.Now().Before(deadline) {
		dep, err := d.cluster.Client.AppsV1().Deployments(appNamespace).Get(ctx, catalogRelease, metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, err
		}
		if err == nil && ok(dep) {
			return dep, nil
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("not within %v", driftTimeout)
}

// sealedSecret sets a secret through the CLI, which seals it to the
// environment's key: the hub stores ciphertext, the agent writes the
// Kubernetes Secret and rolls the Deployment that follows it.
func (d *demo) sealedSecret(ctx context.Context) error {
	d.out.step("A sealed secret: the CLI encrypts to the environment's key; only the agent can open it")
	if _, err := d.cli(ctx, "secret", "keys", envName); err != nil {
		return err
	}
	pw := make([]byte, 16)
	if _, err := rand.Read(pw); err != nil {
		return fmt.Errorf("generate the database password: %w", err)
	}
	d.dbPassword = "db-" + hex.EncodeToString(pw)
	before, err := d.waitDeployment(ctx, func(*appsv1.Deployment) bool { return true })
	if err != nil {
		return err
	}
	args := []string{"secret", "set", envName, catalogSecret, "--namespace", appNamespace, "password=@-", "username=catalog", "--wait", "--timeout", "2m"}
	d.out.command(append([]string{d.binaryShown(cliBinary)}, args...)...)
	d.out.say("password=@- reads the value from stdin: here a fresh random password, never on a command line")
	out, err := d.exec(ctx, cliBinary, d.dbPassword, args...)
	if err != nil {
		return err
	}
	d.out.block(out.shown())
	secret, err := d.cluster.Client.CoreV1().Secrets(appNamespace).Get(ctx, catalogSecret, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("read Secret %s: %w", catalogSecret, err)
	}
	if string(secret.Data["password"]) != d.dbPassword {
		return fmt.Errorf("secret %s/%s does not hold the password that was set", appNamespace, catalogSecret)
	}
	d.out.ok("Secret %s/%s written by the agent with keys password, username (labelled as Outpost's)", appNamespace, catalogSecret)
	after, err := d.waitDeployment(ctx, func(dep *appsv1.Deployment) bool {
		return dep.Spec.Template.Annotations[checksumAnnotation] != before.Spec.Template.Annotations[checksumAnnotation]
	})
	if err != nil {
		return fmt.Errorf("the catalog Deployment was not rolled: %w", err)
	}
	d.out.ok("Deployment catalog follows it (%s): its pod template got %s=%.12s…, so it rolls", restartAnnotation, checksumAnnotation, after.Spec.Template.Annotations[checksumAnnotation])
	d.out.say("the hub holds only ciphertext and metadata; the check below searches its database and every log for the password")
	return nil
}
