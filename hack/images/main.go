// Command images assembles the outpost-hub, outpost-agent and outpost
// container images as OCI image layouts, without a Docker engine: it builds
// each static binary for linux/amd64, puts it FROM scratch beside a
// non-root user, adds the pinned OpenTofu to the agent, writes
// <out>/<name>/ and prints each image's digest. The same source, version,
// OpenTofu, CA bundle and SOURCE_DATE_EPOCH give the same digests.
// deploy/docker/ holds the Dockerfiles for the same images.
//
//	go run ./hack/images -version v0.3.0 -revision $(git rev-parse HEAD) -tofu $(hack/tofu.sh)
//
// Load a layout with e.g. `skopeo copy oci:bin/images/outpost-agent docker://…`
// or `crane push bin/images/outpost-agent …`.
package main

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// binaries are the images, one per command under cmd/.
var binaries = []string{"outpost-hub", "outpost-agent", "outpost"}

// versionVars are the variables -ldflags -X stamps, as the Makefile's build.
var versionVars = []string{
	"github.com/outposthq/outpost/internal/hubcmd.Version",
	"github.com/outposthq/outpost/internal/agentcmd.Version",
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fl := flag.NewFlagSet("images", flag.ContinueOnError)
	out := fl.String("out", "bin/images", "directory that receives one OCI layout per image")
	version := fl.String("version", "dev", "version stamped into the binaries and the labels")
	revision := fl.String("revision", "", "source commit for the labels")
	licenses := fl.String("licenses", "NOASSERTION", "SPDX license expression for the labels")
	tofu := fl.String("tofu", "", "the OpenTofu binary for the agent image (hack/tofu.sh prints it)")
	caBundle := fl.String("ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA bundle installed as the images' system roots; empty for none")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *tofu == "" {
		return errors.New("pass -tofu, the OpenTofu binary hack/tofu.sh builds")
	}
	created, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return err
	}
	tofuBin, err := readLinuxAMD64(*tofu)
	if err != nil {
		return err
	}
	var ca []byte
	if *caBundle != "" {
		if ca, err = os.ReadFile(*caBundle); err != nil {
			return fmt.Errorf("CA bundle: %w (pass -ca-bundle \"\" to leave it out)", err)
		}
	}

	work, err := os.MkdirTemp("", "outpost-images-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(work) }() // a temp dir left behind is harmless
	if err := build(ctx, work, *version); err != nil {
		return err
	}
	for _, name := range binaries {
		bin, err := readLinuxAMD64(filepath.Join(work, name))
		if err != nil {
			return err
		}
		o := Options{
			Name: name, Binary: bin, CABundle: ca,
			Version: *version, Revision: *revision, Licenses: *licenses, Created: created,
		}
		if name == "outpost-agent" {
			o.Extra = []File{{Path: binDir + "/tofu", Mode: 0o755, Data: tofuBin}}
		}
		img, err := Assemble(o)
		if err != nil {
			return err
		}
		dir := filepath.Join(*out, name)
		digest, err := WriteLayout(dir, *version, img)
		if err != nil {
			return fmt.Errorf("image %s: %w", name, err)
		}
		if _, err := fmt.Fprintf(stdout, "%s\t%s\t%s\n", name, digest, dir); err != nil {
			return err
		}
	}
	return nil
}

// build compiles the binaries into dir the way the images need them:
// static, for linux/amd64, without paths or VCS stamps that would make two
// checkouts of the same source differ.
func build(ctx context.Context, dir, version string) error {
	ldflags := []string{"-s", "-w"}
	for _, v := range versionVars {
		ldflags = append(ldflags, "-X", v+"="+version)
	}
	args := []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", strings.Join(ldflags, " "), "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, stderr.Bytes())
	}
	return nil
}

// readLinuxAMD64 reads a binary the images can run: an x86-64 ELF.
func readLinuxAMD64(p string) ([]byte, error) {
	b, err := os.ReadFile(p) //nolint:gosec // a binary named on the command line or just built
	if err != nil {
		return nil, err
	}
	f, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s is not an ELF binary: %w", p, err)
	}
	if f.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%s is built for %s, the images are linux/amd64", p, f.Machine)
	}
	return b, nil
}

// sourceDateEpoch parses SOURCE_DATE_EPOCH (reproducible-builds.org),
// the images' creation time; unset means the Unix epoch.
func sourceDateEpoch(s string) (time.Time, error) {
	if s == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
