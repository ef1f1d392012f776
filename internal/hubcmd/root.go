package hubcmd

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/outposthq/outpost/internal/audit"
	"github.com/outposthq/outpost/internal/devcert"
	"github.com/outposthq/outpost/internal/hub"
	"github.com/outposthq/outpost/internal/redact"
)

// Version is set at build time.
var Version = "dev"

type globalFlags struct {
	db       string
	logLevel string
	logJSON  bool
}

// logger returns the hub's logger. The hub holds no plaintext secret, but
// access, API and bootstrap tokens pass through it and must never be
// logged: every record passes through a Redactor that scrubs what has the
// shape of a credential (DESIGN §5).
func (g *globalFlags) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(g.logLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if g.logJSON {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(redact.NewHandler(h, redact.New()))
}

// NewRootCommand returns the outpost-hub command.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "outpost-hub",
		Short:         "Outpost hub: the control plane agents dial out to",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	def := os.Getenv("OUTPOST_HUB_DB")
	if def == "" {
		def = "outpost-hub.db"
	}
	root.PersistentFlags().StringVar(&g.db, "db", def, "SQLite file or postgres:// URL (env OUTPOST_HUB_DB)")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "debug, info, warn or error")
	root.PersistentFlags().BoolVar(&g.logJSON, "log-json", false, "log JSON lines")
	root.AddCommand(newServeCommand(g), newMigrateCommand(g), newAdminCommand(g), newAuditCommand(g))
	return root
}

type serveFlags struct {
	listen           string
	metricsListen    string
	tlsCert, tlsKey  string
	devTLSDir        string
	devTLSHosts      []string
	signingKeyFile   string
	leaseDuration    time.Duration
	keepalive        time.Duration
	maxRequestBytes  int
	maxArtifactBytes int64
}

func newServeCommand(g *globalFlags) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the agent and operator APIs over TLS",
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServe(cmd.Context(), g, f, cmd.ErrOrStderr())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", ":8443", "address to listen on")
	fl.StringVar(&f.metricsListen, "metrics-listen", "", "serve /metrics (plain HTTP) on this address instead of on --listen, so that the API's port, which an ingress exposes, does not answer it (e.g. :9090)")
	fl.StringVar(&f.tlsCert, "tls-cert", "", "TLS certificate file (PEM)")
	fl.StringVar(&f.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fl.StringVar(&f.devTLSDir, "dev-tls-dir", "", "make and use a throw-away CA and certificate in this directory (development only)")
	fl.StringSliceVar(&f.devTLSHosts, "dev-tls-hosts", []string{"localhost", "127.0.0.1", "::1"}, "names and addresses the development certificate covers")
	fl.StringVar(&f.signingKeyFile, "signing-key-file", "", "Ed25519 seed file for agent access tokens (default: a key kept in the database)")
	fl.DurationVar(&f.leaseDuration, "lease-duration", hub.DefaultLeaseDuration, "task lease duration")
	fl.DurationVar(&f.keepalive, "keepalive", hub.DefaultKeepalive, "Watch keep-alive interval")
	fl.IntVar(&f.maxRequestBytes, "max-request-bytes", hub.DefaultMaxRequestBytes, "largest request message accepted")
	fl.Int64Var(&f.maxArtifactBytes, "max-artifact-bytes", hub.DefaultMaxArtifactBytes, "largest artifact accepted")
	return cmd
}

func runServe(ctx context.Context, g *globalFlags, f *serveFlags, stderr io.Writer) error {
	log := g.logger(stderr)
	certFile, keyFile := f.tlsCert, f.tlsKey
	if f.devTLSDir != "" {
		if certFile != "" || keyFile != "" {
			return errors.New("--dev-tls-dir and --tls-cert/--tls-key exclude each other")
		}
		ca, cert, key, err := devcert.Ensure(f.devTLSDir, f.devTLSHosts)
		if err != nil {
			return err
		}
		certFile, keyFile = cert, key
		log.Warn("serving a development certificate; agents and the CLI need --ca-file", "ca_file", ca)
	}
	if certFile == "" || keyFile == "" {
		return errors.New("the hub serves TLS only: pass --tls-cert and --tls-key, or --dev-tls-dir for a local try-out")
	}
	var signingKey ed25519.PrivateKey
	if f.signingKeyFile != "" {
		seed, err := readSeed(f.signingKeyFile)
		if err != nil {
			return err
		}
		signingKey = ed25519.NewKeyFromSeed(seed)
	}
	st, err := OpenStore(ctx, g.db, log)
	if err != nil {
		return err
	}
	defer st.Close()
	h, err := hub.New(ctx, hub.Options{
		Store: st, Logger: log, SigningKey: signingKey,
		LeaseDuration: f.leaseDuration, Keepalive: f.keepalive,
		MaxRequestBytes: f.maxRequestBytes, MaxArtifactBytes: f.maxArtifactBytes,
	})
	if err != nil {
		return err
	}
	api := h.Handler()
	var metricsLn net.Listener
	if f.metricsListen != "" {
		if metricsLn, err = net.Listen("tcp", f.metricsListen); err != nil {
			return fmt.Errorf("--metrics-listen: %w", err)
		}
		api = h.APIHandler()
		log.Info("hub metrics listening", "address", f.metricsListen)
	}
	log.Info("hub listening", "address", f.listen, "version", Version)
	eg, ctx := errgroup.WithContext(ctx)
	eg.Go(func() error { return h.Start(ctx) })
	eg.Go(func() error {
		return hub.Serve(ctx, hub.ServeOptions{Addr: f.listen, CertFile: certFile, KeyFile: keyFile, Handler: api, Logger: log})
	})
	if metricsLn != nil {
		eg.Go(func() error { return hub.ServeMetrics(ctx, metricsLn, h.MetricsHandler(), log) })
	}
	return eg.Wait()
}

func readSeed(path string) ([]byte, error) {
	b, err := os.ReadFile(path) //nolint:gosec // the operator names the key file
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	b = []byte(strings.TrimSpace(string(b)))
	if len(b) != ed25519.SeedSize {
		return nil, fmt.Errorf("signing key %s must hold a %d-byte Ed25519 seed", path, ed25519.SeedSize)
	}
	return b, nil
}

func newMigrateCommand(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the embedded schema migrations and exit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := OpenStore(cmd.Context(), g.db, g.logger(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "schema is up to date")
			return st.Close()
		},
	}
}

func newAdminCommand(g *globalFlags) *cobra.Command {
	admin := &cobra.Command{Use: "admin", Short: "Administrative commands that talk to the database directly"}
	var tenant, name string
	var ttl time.Duration
	tok := &cobra.Command{
		Use:   "token",
		Short: "Create an operator API token for a tenant (the tenant is created if missing)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if tenant == "" {
				return errors.New("--tenant is required")
			}
			st, err := OpenStore(ctx, g.db, g.logger(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			defer st.Close()
			token, err := hub.CreateAdminToken(ctx, st, tenant, name, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	tok.Flags().StringVar(&tenant, "tenant", "", "tenant the token acts in")
	tok.Flags().StringVar(&name, "name", "admin", "a name for the token, shown in the audit log")
	tok.Flags().DurationVar(&ttl, "ttl", 0, "lifetime (0: no expiry)")
	admin.AddCommand(tok)
	return admin
}

func newAuditCommand(g *globalFlags) *cobra.Command {
	a := &cobra.Command{Use: "audit", Short: "Audit log commands that read the database directly"}
	var tenant string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify a tenant's hash-chained audit log in the database",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			st, err := OpenStore(ctx, g.db, g.logger(cmd.ErrOrStderr()))
			if err != nil {
				return err
			}
			defer st.Close()
			v := audit.NewVerifier(audit.Event{})
			for {
				events, err := st.ListAudit(ctx, tenant, v.Head().Seq, 1000, "")
				if err != nil {
					return err
				}
				if len(events) == 0 {
					break
				}
				for _, e := range events {
					if err := v.Add(e); err != nil {
						return err
					}
				}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "audit chain of tenant %s verified: %d events, head %s\n", tenant, v.Count(), v.Head().Hash)
			return nil
		},
	}
	verify.Flags().StringVar(&tenant, "tenant", "", "tenant whose chain to verify")
	_ = verify.MarkFlagRequired("tenant")
	a.AddCommand(verify)
	return a
}
