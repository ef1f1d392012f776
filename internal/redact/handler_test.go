package redact_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/outposthq/outpost/internal/redact"
)

const handlerSecret = "vault-resolved-9f3c2a" //nolint:gosec // a test fixture

// secretValuer logs the secret through LogValue.
type secretValuer struct{}

func (secretValuer) LogValue() slog.Value { return slog.StringValue("valuer " + handlerSecret) }

// secretStringer renders the secret through String.
type secretStringer struct{}

func (secretStringer) String() string { return "stringer " + handlerSecret }

// creds is a struct that holds the secret in a field.
type creds struct{ User, Password string }

func TestHandler(t *testing.T) {
	leaks := []string{handlerSecret, testJWT, "tok-4711-abcdef"}
	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"a secret in the message is replaced", func(l *slog.Logger) { l.Info("resolved " + handlerSecret) }},
		{"a bearer token in the message is replaced", func(l *slog.Logger) { l.Info("calling with Bearer tok-4711-abcdef") }},
		{"a JWT in the message is replaced", func(l *slog.Logger) { l.Info("got " + testJWT) }},
		{"a string attribute is replaced", func(l *slog.Logger) { l.Info("x", "header", "Bearer "+handlerSecret) }},
		{"an error attribute is replaced", func(l *slog.Logger) {
			l.Error("x", "err", fmt.Errorf("fetch: %w", errors.New("401 for token "+testJWT)))
		}},
		{"a group attribute is replaced at any depth", func(l *slog.Logger) {
			l.Info("x", slog.Group("req", "url", "https://h/", slog.Group("auth", "token", handlerSecret)))
		}},
		{"an attribute bound with With is replaced", func(l *slog.Logger) { l.With("token", handlerSecret).Info("x") }},
		{"an attribute bound inside a group is replaced", func(l *slog.Logger) {
			l.WithGroup("task").With("auth", "Authorization: Bearer tok-4711-abcdef").Info("x", "n", 1)
		}},
		{"a LogValuer is resolved and replaced", func(l *slog.Logger) { l.Info("x", "v", secretValuer{}) }},
		{"a fmt.Stringer is replaced", func(l *slog.Logger) { l.Info("x", "v", secretStringer{}) }},
		{"a struct is rendered and replaced", func(l *slog.Logger) { l.Info("x", "v", creds{"admin", handlerSecret}) }},
		{"a byte slice is replaced", func(l *slog.Logger) { l.Info("x", "v", []byte(handlerSecret)) }},
		{"a key holding the secret is replaced", func(l *slog.Logger) { l.Info("x", handlerSecret, 1) }},
	}
	formats := []struct {
		name string
		new  func(*bytes.Buffer) slog.Handler
	}{
		{"text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
		{"JSON", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
	}
	r := redact.New()
	r.AddSecret(handlerSecret)
	for _, f := range formats {
		for _, tt := range tests {
			t.Run(tt.name+" in "+f.name, func(t *testing.T) {
				var buf bytes.Buffer
				tt.log(slog.New(redact.NewHandler(f.new(&buf), r)))
				out := buf.String()
				if !strings.Contains(out, redact.Marker) {
					t.Fatalf("the output has no %s: %s", redact.Marker, out)
				}
				for _, leak := range leaks {
					if strings.Contains(out, leak) {
						t.Fatalf("the output holds %q: %s", leak, out)
					}
				}
			})
		}
	}
}

func TestHandlerKeepsTheRecordsShape(t *testing.T) {
	noTime := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}
	tests := []struct {
		name string
		log  func(*slog.Logger)
	}{
		{"attributes bound in nested groups stay nested", func(l *slog.Logger) {
			l.With("a", 1).WithGroup("g").With("b", true).WithGroup("inner").Info("hello", "c", "text")
		}},
		{"a group with no attributes is left out", func(l *slog.Logger) { l.With("a", 1).WithGroup("unused").Info("bye") }},
		{"an empty attribute is dropped and a nil one kept", func(l *slog.Logger) {
			l.Info("empty", slog.Attr{}, "nothing", nil)
		}},
		{"numbers, durations and groups keep their kinds", func(l *slog.Logger) {
			l.Info("kinds", "n", 3, "f", 1.5, "d", 2*time.Second, slog.Group("grp", "ok", false))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want, got bytes.Buffer
			tt.log(slog.New(slog.NewJSONHandler(&want, noTime)))
			tt.log(slog.New(redact.NewHandler(slog.NewJSONHandler(&got, noTime), redact.New())))
			if got.String() != want.String() {
				t.Fatalf("through the Handler:\n%s\nwithout it:\n%s", got.String(), want.String())
			}
		})
	}
}

func TestHandlerRedactsSecretsRegisteredAfterWith(t *testing.T) {
	var buf bytes.Buffer
	r := redact.New()
	l := slog.New(redact.NewHandler(slog.NewTextHandler(&buf, nil), r)).With("url", "https://h/?k="+handlerSecret)
	r.AddSecret(handlerSecret)
	l.Info("x")
	if strings.Contains(buf.String(), handlerSecret) {
		t.Fatalf("a value bound before its secret was registered leaked: %s", buf.String())
	}
}

func TestHandlerIsEnabledAsTheNextHandlerIs(t *testing.T) {
	h := redact.NewHandler(slog.NewTextHandler(&bytes.Buffer{}, &slog.HandlerOptions{Level: slog.LevelWarn}), redact.New())
	if h.Enabled(t.Context(), slog.LevelInfo) || !h.Enabled(t.Context(), slog.LevelError) {
		t.Fatal("Enabled does not follow the next handler's level")
	}
}
