package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"sigs.k8s.io/yaml"
)

// format is an output format chosen with -o.
type format string

const (
	formatTable format = "table"
	formatJSON  format = "json"
	formatYAML  format = "yaml"
)

func parseFormat(s string) (format, error) {
	switch f := format(strings.ToLower(s)); f {
	case formatTable, formatJSON, formatYAML:
		return f, nil
	}
	return "", fmt.Errorf("unknown output format %q: use -o table, json or yaml", s)
}

// printMessage writes m as indented JSON or YAML, or calls table with an
// aligned-column writer.
func (a *app) printMessage(m proto.Message, table func(w io.Writer)) error {
	if a.format == formatTable {
		return a.printTable(table)
	}
	b, err := protojson.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	return a.printJSON(b)
}

// printValue is printMessage for plain Go values.
func (a *app) printValue(v any, table func(w io.Writer)) error {
	if a.format == formatTable {
		return a.printTable(table)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode output: %w", err)
	}
	return a.printJSON(b)
}

// printJSON re-indents b (protojson's spacing is deliberately unstable) or
// converts it to YAML.
func (a *app) printJSON(b []byte) error {
	var out []byte
	if a.format == formatYAML {
		y, err := yaml.JSONToYAML(b)
		if err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		out = y
	} else {
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode output: %w", err)
		}
		buf.WriteByte('\n')
		out = buf.Bytes()
	}
	_, err := a.opts.Stdout.Write(out)
	return err
}

func (a *app) printTable(table func(w io.Writer)) error {
	tw := tabwriter.NewWriter(a.opts.Stdout, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// row writes one tab-separated table row.
func row(w io.Writer, cols ...string) {
	linef(w, "%s\n", strings.Join(cols, "\t"))
}

// linef writes free text into a table. Write errors are dropped here
// because the tabwriter reports them from Flush, which printTable checks.
func linef(w io.Writer, format string, args ...any) {
	_, _ = fmt.Fprintf(w, format, args...)
}

// notef writes a remark for the human at the terminal to stderr, so that
// stdout stays parseable.
func (a *app) notef(format string, args ...any) {
	_, _ = fmt.Fprintf(a.opts.Stderr, format+"\n", args...) // a note that cannot be shown is no reason to fail
}

// when renders a timestamp absolute and relative to now, e.g.
// "2026-03-01 11:55:00 UTC (5m ago)", or "-" when unset.
func (a *app) when(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	t := ts.AsTime()
	return t.In(a.opts.Location).Format("2006-01-02 15:04:05 MST") + " (" + relative(a.opts.Now(), t) + ")"
}

// ago renders only the relative part, for narrow table columns.
func (a *app) ago(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return "-"
	}
	return relative(a.opts.Now(), ts.AsTime())
}

// relative renders t as "5m ago" or "in 2h" seen from now.
func relative(now, t time.Time) string {
	d := now.Sub(t)
	if d > -time.Second && d < time.Second {
		return "just now"
	}
	if d < 0 {
		return "in " + shortDuration(-d)
	}
	return shortDuration(d) + " ago"
}

// shortDuration keeps the two largest units: 45s, 5m, 2h10m, 3d4h.
func shortDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", d/time.Second)
	case d < time.Hour:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d < 48*time.Hour:
		h, m := d/time.Hour, (d%time.Hour)/time.Minute
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := d/(24*time.Hour), (d%(24*time.Hour))/time.Hour
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// prettyJSON indents a JSON document by prefix for a detail view; a
// document that is not JSON is shown as its size.
func prettyJSON(b []byte, prefix string) string {
	if len(b) == 0 {
		return prefix + "(none)"
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, prefix, "  "); err != nil {
		return fmt.Sprintf("%s(%d bytes, not JSON)", prefix, len(b))
	}
	return prefix + buf.String()
}

// envName is how every view names an environment: "tenant/env", since an
// environment name is only unique inside its tenant. An empty tenant
// leaves the name as it is.
func envName(tenant, env string) string {
	if tenant == "" || env == "" {
		return env
	}
	return tenant + "/" + env
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
