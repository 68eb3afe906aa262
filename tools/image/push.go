package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// maxPasswordBytes bounds what is read from stdin; ECR tokens are ~2 KiB.
const maxPasswordBytes = 64 << 10

func runPush(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	ociDir := fs.String("oci", "", "OCI layout written by `image build --oci`: push its image index")
	tarPath := fs.String("tar", "", "docker-archive tarball written by `image build -o`: push its one image")
	to := fs.String("to", "", "destination REGISTRY/REPO:TAG (required)")
	username := fs.String("username", "", "registry user name, with --password-stdin (for ECR: AWS)")
	passwordStdin := fs.Bool("password-stdin", false, "read the registry password from stdin")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (*ociDir == "") == (*tarPath == "") || *to == "" {
		return usagef("one of --oci DIR or --tar FILE, and --to REGISTRY/REPO:TAG, are required")
	}
	if *passwordStdin != (*username != "") {
		return usagef("--username and --password-stdin go together")
	}
	ref, err := name.ParseReference(*to)
	if err != nil {
		return usagef("--to %q: %v", *to, err)
	}
	// The input is read and checked (manifests, configs, layer digests)
	// before anything is sent, so a bad one fails here and not half-way.
	var what remote.Taggable
	var digest v1.Hash
	if *ociDir != "" {
		index, err := readLayout(*ociDir)
		if err != nil {
			return usagef("--oci %s: %v", *ociDir, err)
		}
		what = index
		digest, err = index.Digest()
		if err != nil {
			return usagef("--oci %s: %v", *ociDir, err)
		}
	} else {
		img, err := tarball.ImageFromPath(*tarPath, nil)
		if err != nil {
			return usagef("--tar %s: %v", *tarPath, err)
		}
		if err := validate.Image(img, validate.Fast); err != nil {
			return usagef("--tar %s: %v", *tarPath, err)
		}
		what = img
		digest, err = img.Digest()
		if err != nil {
			return usagef("--tar %s: %v", *tarPath, err)
		}
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	if *passwordStdin {
		password, err := readPassword(stdin)
		if err != nil {
			return err
		}
		auth = remote.WithAuth(&authn.Basic{Username: *username, Password: password})
	}
	opts := []remote.Option{auth, remote.WithContext(ctx), remote.WithUserAgent("omikuji-image")}
	switch w := what.(type) {
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, w, opts...)
	case v1.Image:
		err = remote.Write(ref, w, opts...)
	}
	if err != nil {
		return fmt.Errorf("pushing to %s: %w", ref, err)
	}
	fmt.Fprintf(stdout, "pushed %s@%s\n", ref.Context(), digest)
	return nil
}

// readLayout finds the one image index in an OCI layout written by build and
// checks it and every image in it.
func readLayout(dir string) (v1.ImageIndex, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, err
	}
	top, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := top.IndexManifest()
	if err != nil {
		return nil, err
	}
	if len(m.Manifests) != 1 || !m.Manifests[0].MediaType.IsIndex() {
		return nil, fmt.Errorf("want one image index in index.json, as build writes it; found %d entries", len(m.Manifests))
	}
	index, err := top.ImageIndex(m.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	if err := validate.Index(index, validate.Fast); err != nil {
		return nil, err
	}
	return index, nil
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
