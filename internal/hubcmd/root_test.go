package hubcmd

import (
	"bytes"
	"strings"
	"testing"

	"github.com/outposthq/outpost/internal/auth"
	"github.com/outposthq/outpost/internal/redact"
)

func TestHubLoggerScrubsTokens(t *testing.T) {
	bootstrap, err := auth.NewToken(auth.PrefixBootstrapToken)
	if err != nil {
		t.Fatal(err)
	}
	const access = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZ2VudC0xIn0.c2lnbmF0dXJl" //nolint:gosec // a test fixture
	for _, tt := range []struct {
		name string
		json bool
	}{{"text logs never hold an access or bootstrap token", false}, {"JSON logs never hold an access or bootstrap token", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			g := &globalFlags{logLevel: "info", logJSON: tt.json}
			g.logger(&buf).Info("enrolling with "+bootstrap, "authorization", "Bearer "+access)
			out := buf.String()
			if !strings.Contains(out, redact.Marker) {
				t.Fatalf("nothing was redacted: %s", out)
			}
			for _, leak := range []string{bootstrap, access} {
				if strings.Contains(out, leak) {
					t.Fatalf("the log holds %q: %s", leak, out)
				}
			}
		})
	}
}
