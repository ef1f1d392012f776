package redact

import (
	"context"
	"encoding"
	"fmt"
	"log/slog"
)

// Handler is a slog.Handler that passes every record through a Redactor
// before the next handler sees it: the message, every attribute's key and
// value, the attributes of groups at any depth, and the attributes bound
// with WithAttrs. LogValuers are resolved first. Values of kind Any (errors,
// fmt.Stringers, encoding.TextMarshalers, byte slices, structs...) reach
// the next handler as their redacted text, since only text can be
// redacted; numbers, booleans, times and durations pass unchanged.
//
// Attributes bound with WithAttrs are kept and redacted at each record,
// so a secret registered after they were bound is still removed.
type Handler struct {
	next slog.Handler
	r    *Redactor
	// bound is what WithAttrs and WithGroup added, in order.
	bound []groupOrAttrs
}

var _ slog.Handler = (*Handler)(nil)

// groupOrAttrs is one WithGroup (group set) or WithAttrs (attrs set) call.
type groupOrAttrs struct {
	group string
	attrs []slog.Attr
}

// NewHandler returns a Handler that redacts with r and passes the records
// on to next.
func NewHandler(next slog.Handler, r *Redactor) *Handler {
	return &Handler{next: next, r: r}
}

// Enabled reports whether the next handler handles records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle redacts rec and the bound attributes and hands them to the next
// handler, nesting them in the groups opened by WithGroup.
func (h *Handler) Handle(ctx context.Context, rec slog.Record) error {
	attrs := make([]slog.Attr, 0, rec.NumAttrs())
	rec.Attrs(func(a slog.Attr) bool {
		attrs = append(attrs, h.attr(a))
		return true
	})
	for i := len(h.bound) - 1; i >= 0; i-- {
		b := h.bound[i]
		if b.group != "" {
			if len(attrs) > 0 {
				attrs = []slog.Attr{{Key: b.group, Value: slog.GroupValue(attrs...)}}
			}
			continue
		}
		redacted := make([]slog.Attr, 0, len(b.attrs)+len(attrs))
		for _, a := range b.attrs {
			redacted = append(redacted, h.attr(a))
		}
		attrs = append(redacted, attrs...)
	}
	out := slog.NewRecord(rec.Time, rec.Level, h.r.String(rec.Message), rec.PC)
	out.AddAttrs(attrs...)
	return h.next.Handle(ctx, out)
}

// WithAttrs returns a Handler that adds attrs, redacted, to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return h.with(groupOrAttrs{attrs: attrs})
}

// WithGroup returns a Handler that nests what follows in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(groupOrAttrs{group: h.r.String(name)})
}

func (h *Handler) with(g groupOrAttrs) *Handler {
	bound := make([]groupOrAttrs, 0, len(h.bound)+1)
	bound = append(bound, h.bound...)
	return &Handler{next: h.next, r: h.r, bound: append(bound, g)}
}

// attr returns a with its key and value redacted.
func (h *Handler) attr(a slog.Attr) slog.Attr {
	if a.Equal(slog.Attr{}) {
		return a // handlers drop it
	}
	key := h.r.String(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(key, h.r.String(v.String()))
	case slog.KindGroup:
		group := v.Group()
		attrs := make([]slog.Attr, len(group))
		for i, g := range group {
			attrs[i] = h.attr(g)
		}
		return slog.Attr{Key: key, Value: slog.GroupValue(attrs...)}
	case slog.KindAny:
		if v.Any() == nil {
			return slog.Attr{Key: key, Value: v}
		}
		return slog.String(key, h.r.String(text(v.Any())))
	}
	return slog.Attr{Key: key, Value: v}
}

// text renders a value of kind Any as the built-in handlers would, as
// text.
func text(v any) string {
	switch v := v.(type) {
	case error, fmt.Stringer:
		// fmt recovers from a method that panics on a nil receiver.
		return fmt.Sprint(v)
	case encoding.TextMarshaler:
		b, err := v.MarshalText()
		if err != nil {
			return fmt.Sprintf("!ERROR:%v", err)
		}
		return string(b)
	case []byte:
		return string(v)
	}
	return fmt.Sprintf("%+v", v)
}
