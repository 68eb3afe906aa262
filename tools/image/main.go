// Command image builds the omikuji container image without Docker and pushes
// it to a registry.
//
//	go run ./tools/image build --oci dist/omikuji-oci [-o dist/omikuji-image.tar] [--platform linux/amd64,linux/arm64]
//	go run ./tools/image push --oci dist/omikuji-oci --to REGISTRY/REPO:TAG [--username AWS --password-stdin]
//
// The image is the same as the Dockerfile's: one static binary at /omikuji
// owned by root, its SBOM at /sbom.cdx.json, user 65532:65532, no shell, no
// base image, for linux/amd64 and linux/arm64 under one OCI image index.
// Building it in Go means a machine with only the Go toolchain (CI, the e2e
// harness, make aws-up) can produce and ship it, and the same source always
// gives the same digest.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  image build [--oci DIR] [-o FILE.tar] [--platform linux/amd64,linux/arm64] [--tag omikuji:dev]
              [--main ./cmd/omikuji] [--revision SHA] [--version V]
  image push (--oci DIR | --tar FILE.tar) --to REGISTRY/REPO:TAG [--username USER --password-stdin]
  image sbom [--version V] BINARY

build writes an OCI layout holding one image index of every --platform
(--oci), and/or a docker-archive tarball of the first one (-o; for
"ctr images import", "docker load"). The default platforms are both, this
machine's first. push uploads the index or the tarball, authenticating with
--username and a password read from stdin, or else with
~/.docker/config.json. sbom prints the CycloneDX SBOM of a Go binary, the
one build puts at /sbom.cdx.json.
`

// A usageError is bad input from the caller: the command exits 2 and has
// changed nothing.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one subcommand and returns the process exit code:
// 0 on success, 2 for bad input, 1 for any other failure.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "build":
		err = runBuild(ctx, args[1:], stdout, stderr)
	case "push":
		err = runPush(ctx, args[1:], stdin, stdout, stderr)
	case "sbom":
		err = runSBOM(args[1:], stdout)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usagef("unknown command %q", args[0])
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "image %s: %v\n", args[0], err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(stderr, usage)
		return 2
	}
	return 1
}
