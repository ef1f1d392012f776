package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	v1 "github.com/outposthq/outpost/gen/outpost/v1"
	"github.com/outposthq/outpost/gen/outpost/v1/outpostv1connect"
	"github.com/outposthq/outpost/internal/audit"
)

// maxAuditLineBytes bounds one line of an audit export read back.
const maxAuditLineBytes = 8 << 20

func (a *app) newAuditCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "Query, export and verify the tamper-evident audit log",
	}
	cmd.AddCommand(a.newAuditListCommand(), a.newAuditExportCommand(), a.newAuditVerifyCommand())
	return cmd
}

func (a *app) newAuditListCommand() *cobra.Command {
	var (
		after  int64
		limit  int32
		action string
	)
	cmd := &cobra.Command{
		Use:   "list [--after SEQ] [--limit N] [--action ACTION]",
		Short: "List audit events in order",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < 0 || limit < 0 {
				return errors.New("audit list: --after and --limit must not be negative")
			}
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			res, err := client.ListAuditEvents(cmd.Context(), connect.NewRequest(&v1.ListAuditEventsRequest{
				AfterSeq: after, Limit: limit, Action: action,
			}))
			if err != nil {
				return apiError("list audit events", err)
			}
			return a.printMessage(res.Msg, func(w io.Writer) {
				row(w, "SEQ", "TIME", "ACTOR", "ACTION", "ENVIRONMENT", "SUBJECT")
				for _, e := range res.Msg.GetEvents() {
					row(w, strconv.FormatInt(e.GetSeq(), 10), a.when(e.GetTime()), orDash(e.GetActor()), e.GetAction(),
						orDash(envName(e.GetTenant(), e.GetEnvironment())), orDash(e.GetSubject()))
				}
			})
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&after, "after", 0, "only events after this sequence number")
	fl.Int32Var(&limit, "limit", 0, "at most this many events (default: the hub's)")
	fl.StringVar(&action, "action", "", "only events with this action, e.g. agent.registered")
	return cmd
}

func (a *app) newAuditExportCommand() *cobra.Command {
	var (
		after int64
		file  string
	)
	cmd := &cobra.Command{
		Use:   "export [--after SEQ] [--file F]",
		Short: "Export the audit chain as JSON lines",
		Long: `export streams every audit event after --after as one JSON object per line,
to stdout or to --file (written 0600, replaced only once the export is
complete). The format is fixed; -o does not apply. ` + "`outpost audit verify --file F`" + `
checks a full export (from the first event) offline; append later exports with
--after to keep one file current.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if after < 0 {
				return errors.New("audit export: --after must not be negative")
			}
			client, _, err := a.dial()
			if err != nil {
				return err
			}
			var n int64
			export := func(w io.Writer) (err error) {
				n, err = exportAudit(cmd.Context(), client, after, w)
				return err
			}
			if file == "" {
				return export(a.opts.Stdout)
			}
			if err := writePrivateFile(file, export); err != nil {
				return err
			}
			a.notef("Exported %s to %s.", plural(n, "event"), file)
			return nil
		},
	}
	cmd.Flags().Int64Var(&after, "after", 0, "only events after this sequence number")
	cmd.Flags().StringVar(&file, "file", "", "write to this file instead of stdout")
	return cmd
}

// exportAudit writes the chain after seq `after` to w as JSON lines and
// returns how many events it wrote.
func exportAudit(ctx context.Context, client outpostv1connect.OperatorServiceClient, after int64, w io.Writer) (int64, error) {
	bw := bufio.NewWriter(w)
	var n int64
	err := streamAudit(ctx, client, after, func(e *v1.AuditEvent) error {
		b, err := protojson.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode audit event %d: %w", e.GetSeq(), err)
		}
		// protojson may space its output; keep one compact line per event.
		line, err := compactJSON(b)
		if err != nil {
			return err
		}
		n++
		_, err = bw.Write(append(line, '\n'))
		return err
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// streamAudit calls fn for every event ExportAuditEvents sends after seq
// `after`, in order.
func streamAudit(ctx context.Context, client outpostv1connect.OperatorServiceClient, after int64, fn func(*v1.AuditEvent) error) error {
	stream, err := client.ExportAuditEvents(ctx, connect.NewRequest(&v1.ExportAuditEventsRequest{AfterSeq: after}))
	if err != nil {
		return apiError("export audit events", err)
	}
	defer closeQuietly(stream)
	for stream.Receive() {
		for _, e := range stream.Msg().GetEvents() {
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	if err := stream.Err(); err != nil {
		return apiError("export audit events", err)
	}
	return nil
}

// verifyResult is what `audit verify` reports on success.
type verifyResult struct {
	Source   string `json:"source"`
	Tenant   string `json:"tenant,omitempty"`
	Events   int64  `json:"events"`
	HeadSeq  int64  `json:"headSeq"`
	HeadHash string `json:"headHash,omitempty"`
	// Previous is the head remembered from the last verification, which
	// this one found unchanged in the chain.
	Previous *auditHead `json:"previousHead,omitempty"`
}

func (a *app) newAuditVerifyCommand() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "verify [--file F]",
		Short: "Verify the audit hash chain, live or from an export",
		Long: `verify checks every link of the audit chain: sequence numbers without gaps,
each event pointing at the previous one's hash, and each hash matching its
event. Without --file it reads the chain from the hub; with --file it reads a
full export written by ` + "`outpost audit export`" + `.

The last head verified is remembered per hub and tenant (in audit-heads.json
next to the config file); a later verification that finds the chain shorter
than that head, or a different event at its place, reports tampering even
though the remaining chain is consistent, as happens when the newest events
are deleted. Exits 1 on any failure, naming the event where the chain breaks.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				return a.verifyAuditFile(file)
			}
			return a.verifyAuditLive(cmd.Context())
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "verify this export instead of the hub's live chain")
	return cmd
}

func (a *app) verifyAuditLive(ctx context.Context) error {
	client, cfg, err := a.dial()
	if err != nil {
		return err
	}
	who, err := client.WhoAmI(ctx, connect.NewRequest(&v1.WhoAmIRequest{}))
	if err != nil {
		return apiError("audit verify", err)
	}
	tenant := who.Msg.GetTenant()
	known, err := a.loadAuditHead(cfg.Hub, tenant)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	check := newChainCheck(tenant, known)
	err = streamAudit(ctx, client, 0, func(e *v1.AuditEvent) error {
		return check.add(e, "")
	})
	if err != nil {
		return err
	}
	return a.finishVerify(check, cfg.Hub, tenant, cfg.Hub)
}

func (a *app) verifyAuditFile(path string) error {
	f, err := os.Open(path) //nolint:gosec // the operator names the export to verify
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer closeQuietly(f)
	// The remembered head is keyed by hub, so it is checked only when the
	// config names one; the file's own chain is verified either way.
	hub := ""
	switch cfg, err := a.loadConfig(); {
	case errors.Is(err, ErrNotLoggedIn):
		a.notef("Note: not logged in, so the chain is verified without comparing it to a remembered head.")
	case err != nil:
		return err
	default:
		hub = cfg.Hub
	}
	var check *chainCheck
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxAuditLineBytes)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		e := &v1.AuditEvent{}
		if err := protojson.Unmarshal(sc.Bytes(), e); err != nil {
			return fmt.Errorf("audit verify: line %d of %s is not an audit event: %w", line, path, err)
		}
		if check == nil {
			var known *auditHead
			if hub != "" {
				if known, err = a.loadAuditHead(hub, e.GetTenant()); err != nil {
					return fmt.Errorf("audit verify: %w", err)
				}
			}
			check = newChainCheck(e.GetTenant(), known)
		}
		if err := check.add(e, fmt.Sprintf("line %d of %s", line, path)); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("audit verify: read %s: %w", path, err)
	}
	if check == nil {
		return fmt.Errorf("audit verify: %s holds no audit events", path)
	}
	return a.finishVerify(check, hub, check.tenant, path)
}

// finishVerify checks the end of the chain against the remembered head,
// remembers the new head and prints the result.
func (a *app) finishVerify(check *chainCheck, hub, tenant, source string) error {
	if err := check.finish(); err != nil {
		return err
	}
	head := check.v.Head()
	res := verifyResult{Source: source, Tenant: tenant, Events: check.v.Count(), HeadSeq: head.Seq, HeadHash: head.Hash, Previous: check.known}
	if hub != "" && head.Seq > 0 {
		err := a.saveAuditHead(hub, tenant, auditHead{Seq: head.Seq, Hash: head.Hash, VerifiedAt: a.opts.Now().UTC().Truncate(time.Second)})
		if err != nil {
			return fmt.Errorf("audit verify: the chain is intact but its head could not be remembered: %w", err)
		}
	}
	return a.printValue(res, func(w io.Writer) {
		linef(w, "The audit chain is intact: %s verified.\n", plural(res.Events, "event"))
		if head.Seq > 0 {
			linef(w, "HEAD:\tevent %d, hash %s\n", head.Seq, head.Hash)
		}
		if k := check.known; k != nil {
			linef(w, "PREVIOUS HEAD:\tevent %d, verified %s, still in place\n", k.Seq, a.when(timestamppb.New(k.VerifiedAt)))
		}
	})
}

// chainCheck verifies a chain from its first event, one event at a time,
// and compares it with the head remembered from an earlier verification.
type chainCheck struct {
	v      *audit.Verifier
	tenant string
	known  *auditHead
}

func newChainCheck(tenant string, known *auditHead) *chainCheck {
	return &chainCheck{v: audit.NewVerifier(audit.Event{}), tenant: tenant, known: known}
}

// add verifies the next event; where says where it came from, for errors.
func (c *chainCheck) add(pe *v1.AuditEvent, where string) error {
	e := auditEventFromProto(pe)
	if where == "" {
		where = "from the hub"
	}
	if e.Tenant != c.tenant {
		return fmt.Errorf("%w: event %d (%s) belongs to tenant %q, expected %q", audit.ErrChainBroken, e.Seq, where, e.Tenant, c.tenant)
	}
	if err := c.v.Add(e); err != nil {
		return fmt.Errorf("%w\n  the chain breaks at event %d (%s): %s %s by %s, subject %q",
			err, e.Seq, where, e.Time.Format(time.RFC3339), e.Action, orDash(e.Actor), e.Subject)
	}
	if k := c.known; k != nil && e.Seq == k.Seq && e.Hash != k.Hash {
		return fmt.Errorf("%w: event %d (%s) now hashes to %.12s…, but the chain verified on %s had %.12s… there: the log was rewritten from event %d on",
			ErrAuditTampered, e.Seq, where, e.Hash, k.VerifiedAt.Format(time.RFC3339), k.Hash, e.Seq)
	}
	return nil
}

// finish reports a chain that ends before the remembered head.
func (c *chainCheck) finish() error {
	head := c.v.Head()
	if k := c.known; k != nil && head.Seq < k.Seq {
		return fmt.Errorf("%w: the chain ends at event %d, but event %d was verified on %s: events %d to %d have been deleted",
			ErrAuditTampered, head.Seq, k.Seq, k.VerifiedAt.Format(time.RFC3339), head.Seq+1, k.Seq)
	}
	return nil
}

func auditEventFromProto(e *v1.AuditEvent) audit.Event {
	return audit.Event{
		Seq:         e.GetSeq(),
		Time:        e.GetTime().AsTime(),
		Tenant:      e.GetTenant(),
		Environment: e.GetEnvironment(),
		Actor:       e.GetActor(),
		Action:      e.GetAction(),
		Subject:     e.GetSubject(),
		Details:     e.GetDetails(),
		PrevHash:    e.GetPrevHash(),
		Hash:        e.GetHash(),
	}
}

func compactJSON(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("encode audit event: %w", err)
	}
	return buf.Bytes(), nil
}
