package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// maxPasswordBytes bounds what is read from stdin; ECR tokens are ~2 KiB.
const maxPasswordBytes = 64 << 10

func runPush(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tarPath := fs.String("tar", "", "docker-archive tarball written by `image build` (required)")
	to := fs.String("to", "", "destination REGISTRY/REPO:TAG (required)")
	username := fs.String("username", "", "registry user name, with --password-stdin (for ECR: AWS)")
	passwordStdin := fs.Bool("password-stdin", false, "read the registry password from stdin")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *tarPath == "" || *to == "" {
		return usagef("--tar FILE and --to REGISTRY/REPO:TAG are required")
	}
	if *passwordStdin != (*username != "") {
		return usagef("--username and --password-stdin go together")
	}
	ref, err := name.ParseReference(*to)
	if err != nil {
		return usagef("--to %q: %v", *to, err)
	}
	// The tarball is read fully (config, manifest, layer digests) before
	// anything is sent, so a bad file fails here and not half-way through.
	img, err := tarball.ImageFromPath(*tarPath, nil)
	if err != nil {
		return usagef("--tar %s: %v", *tarPath, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return usagef("--tar %s: %v", *tarPath, err)
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	if *passwordStdin {
		password, err := readPassword(stdin)
		if err != nil {
			return err
		}
		auth = remote.WithAuth(&authn.Basic{Username: *username, Password: password})
	}
	if err := remote.Write(ref, img, auth, remote.WithContext(ctx), remote.WithUserAgent("omikuji-image")); err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	fmt.Fprintf(stdout, "pushed %s@%s\n", ref.Context(), digest)
	return nil
}

// readPassword takes the first line of stdin, as `docker login
// --password-stdin` does.
func readPassword(stdin io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(stdin, maxPasswordBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the password from stdin: %w", err)
	}
	if len(b) > maxPasswordBytes {
		return "", usagef("password on stdin is longer than %d bytes", maxPasswordBytes)
	}
	password := strings.TrimRight(string(b), "\r\n")
	if password == "" || strings.ContainsAny(password, "\r\n") {
		return "", usagef("--password-stdin: want one non-empty line on stdin")
	}
	return password, nil
}
