package tofutest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// maxStateBytes bounds a state read back from its Secret.
const maxStateBytes = 16 << 20

// StateSecret names the kubernetes backend's state Secret of workspace,
// in the default OpenTofu workspace the executor uses.
func StateSecret(workspace string) string { return "tfstate-default-" + workspace }

// ReadState returns the state document of workspace from its Secret in
// namespace (gzip'd JSON under "tfstate"), decoded.
func ReadState(ctx context.Context, client kubernetes.Interface, namespace, workspace string) (map[string]any, error) {
	sec, err := client.CoreV1().Secrets(namespace).Get(ctx, StateSecret(workspace), metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("state Secret: %w", err)
	}
	raw, err := gunzip(sec.Data["tfstate"])
	if err != nil {
		return nil, fmt.Errorf("state Secret %s: %w", sec.Name, err)
	}
	var state map[string]any
	if err := json.Unmarshal(raw, &state); err != nil {
		return nil, fmt.Errorf("state Secret %s: %w", sec.Name, err)
	}
	return state, nil
}

// EditState rewrites the state of workspace in its Secret through edit,
// bumping its serial, as a change made behind the agent's back would (a
// hand edit of the Secret, or what a provider's refresh would find).
func EditState(ctx context.Context, client kubernetes.Interface, namespace, workspace string, edit func(state map[string]any)) error {
	secrets := client.CoreV1().Secrets(namespace)
	sec, err := secrets.Get(ctx, StateSecret(workspace), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("state Secret: %w", err)
	}
	raw, err := gunzip(sec.Data["tfstate"])
	if err != nil {
		return fmt.Errorf("state Secret %s: %w", sec.Name, err)
	}
	var state map[string]any
	if err := json.Unmarshal(raw, &state); err != nil {
		return fmt.Errorf("state Secret %s: %w", sec.Name, err)
	}
	edit(state)
	serial, _ := state["serial"].(float64)
	state["serial"] = serial + 1
	if raw, err = json.Marshal(state); err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	sec.Data["tfstate"] = buf.Bytes()
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("write state Secret %s: %w", sec.Name, err)
	}
	return nil
}

// Attributes returns the attributes of the first instance of resource
// typ.name in state, or nil.
func Attributes(state map[string]any, typ, name string) map[string]any {
	resources, _ := state["resources"].([]any)
	for _, r := range resources {
		res, _ := r.(map[string]any)
		if res["type"] != typ || res["name"] != name {
			continue
		}
		instances, _ := res["instances"].([]any)
		if len(instances) == 0 {
			return nil
		}
		inst, _ := instances[0].(map[string]any)
		attrs, _ := inst["attributes"].(map[string]any)
		return attrs
	}
	return nil
}

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	out, err := io.ReadAll(io.LimitReader(zr, maxStateBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxStateBytes {
		return nil, fmt.Errorf("state larger than %d bytes", maxStateBytes)
	}
	return out, nil
}
