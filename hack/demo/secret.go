package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/outposthq/outpost/internal/executor/httpcall"
	"github.com/outposthq/outpost/internal/redact"
)

// errLeak marks a secret found where it must never be.
var errLeak = errors.New("SECRET LEAKED")

// secretForms are the byte strings that would betray secret: the value
// itself and its base64 forms (protojson shows bytes fields in base64).
func secretForms(secret string) [][]byte {
	return [][]byte{
		[]byte(secret),
		[]byte(base64.RawStdEncoding.EncodeToString([]byte(secret))),
		[]byte(base64.RawURLEncoding.EncodeToString([]byte(secret))),
	}
}

// containsSecret reports whether b holds secret in any of its forms.
func containsSecret(b []byte, secret string) bool {
	return slices.ContainsFunc(secretForms(secret), func(form []byte) bool { return bytes.Contains(b, form) })
}

// checkSecret shows, and fails loudly unless, the payments token reached
// the payments API and nothing else: not the task result, not the hub's
// database, not any log or other file the demo's processes wrote.
func (d *demo) checkSecret(context.Context) error {
	d.out.step("Where the secret went")
	if n := d.api.authorized.Load(); n == 0 {
		return fmt.Errorf("the payments API received no call with the right token (%d refused): the agent did not resolve %s", d.api.refused.Load(), vaultRef)
	}
	d.out.ok("the payments API received the real token: %s, %d refused", plural(d.api.authorized.Load(), "authorized call"), d.api.refused.Load())

	for what, text := range d.taskOutputs {
		if containsSecret([]byte(text), d.secret) {
			return fmt.Errorf("%w: the payments token appears in %s", errLeak, what)
		}
	}
	result := d.task.GetResult()
	if containsSecret(result, d.secret) || containsSecret([]byte(d.task.GetError()), d.secret) {
		return fmt.Errorf("%w: the payments token appears in the result of task %s", errLeak, d.task.GetId())
	}
	if err := d.showRedaction(result); err != nil {
		return err
	}
	d.out.ok("not in the task result, as the hub stored it and the CLI printed it")

	var db, others []string
	var dbBytes int64
	err := filepath.WalkDir(d.dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.dir, path)
		if !e.Type().IsRegular() || rel == vaultFile {
			return nil
		}
		b, err := os.ReadFile(path) //nolint:gosec // a file in the demo's own state directory
		if err != nil {
			return err
		}
		if containsSecret(b, d.secret) {
			return fmt.Errorf("%w: the payments token appears in %s", errLeak, path)
		}
		if d.dbPassword != "" && containsSecret(b, d.dbPassword) {
			return fmt.Errorf("%w: the sealed database password appears in %s", errLeak, path)
		}
		if strings.HasPrefix(rel, hubDBFile) {
			db = append(db, rel)
			dbBytes += int64(len(b))
		} else {
			others = append(others, rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan the state directory: %w", err)
	}
	if len(db) == 0 {
		return fmt.Errorf("found no hub database in %s to scan", d.dir)
	}
	d.out.ok("not in the hub's database: %s (%d KiB scanned)", strings.Join(db, ", "), (dbBytes+1023)/1024)
	if d.dbPassword != "" {
		d.out.ok("the sealed database password is in none of these files either: the hub only ever had its ciphertext")
	}
	d.out.ok("not in any other file of $%s (%d files, hub.log and agent.log among them)", stateDirVar, len(others))
	d.out.say("it exists only in %s, in the agent's memory and at the payments API", d.out.path(d.path(vaultFile)))
	return nil
}

// plural writes n and word, with an s unless n is 1.
func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// showRedaction shows what became of the Authorization header the payments
// API echoed, and fails unless the agent redacted both echoes.
func (d *demo) showRedaction(result []byte) error {
	var res httpcall.Result
	if err := json.Unmarshal(result, &res); err != nil {
		return fmt.Errorf("task %s: the result is not an http result: %w", d.task.GetId(), err)
	}
	var body rotateResponse
	if err := json.Unmarshal([]byte(res.Body), &body); err != nil {
		return fmt.Errorf("task %s: the payments API's answer in the result is not its JSON (status %d): %w", d.task.GetId(), res.Status, err)
	}
	echoed := body.Echo["authorization"]
	header := res.Headers.Get(echoHeader)
	if !strings.Contains(echoed, redact.Marker) || header != redact.Marker {
		return fmt.Errorf("task %s: the echoed Authorization header was not redacted as expected: body %q, header %s: %q",
			d.task.GetId(), echoed, echoHeader, header)
	}
	d.out.ok("the API echoed it back; the agent redacted both echoes before reporting:")
	d.out.block(fmt.Sprintf("header %s: %s\nbody   \"echo\": {\"authorization\": %q}", echoHeader, header, echoed))
	return nil
}
