package main

import (
	"archive/tar"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's fixed facts. The Dockerfile states the same ones; the
// Kubernetes manifests rely on the user and the port.
const (
	binaryPath = "omikuji" // in the layer, i.e. /omikuji
	uid        = 65532     // "nonroot", as in distroless
	port       = "8081/tcp"
	sourceURL  = "https://github.com/omikuji/omikuji"
)

// platforms are the ones EKS nodes run: x86 and Graviton.
var platforms = map[string]bool{"linux/amd64": true, "linux/arm64": true}

// buildOptions is what `image build` was asked to do.
type buildOptions struct {
	out      string
	tag      name.Tag
	platform string // "linux/amd64"
	mainPkg  string // the package go build compiles
	revision string // optional git revision for the OCI label
	created  time.Time
}

func parseBuildFlags(args []string) (buildOptions, error) {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	out := fs.String("o", "", "write the docker-archive tarball to this `file` (required)")
	tag := fs.String("tag", "omikuji:dev", "image name and tag recorded in the tarball")
	platform := fs.String("platform", defaultPlatform(), "target platform: linux/amd64 or linux/arm64")
	mainPkg := fs.String("main", "./cmd/omikuji", "Go package to build into /omikuji")
	revision := fs.String("revision", "", "source revision for the org.opencontainers.image.revision label")
	if err := fs.Parse(args); err != nil {
		return buildOptions{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return buildOptions{}, usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *out == "" {
		return buildOptions{}, usagef("-o FILE is required")
	}
	t, err := name.NewTag(*tag)
	if err != nil {
		return buildOptions{}, usagef("--tag %q: %v", *tag, err)
	}
	if !platforms[*platform] {
		return buildOptions{}, usagef("--platform %q: want linux/amd64 or linux/arm64", *platform)
	}
	if *mainPkg == "" {
		return buildOptions{}, usagef("--main must name a Go package")
	}
	created, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return buildOptions{}, usageError{err}
	}
	return buildOptions{out: *out, tag: t, platform: *platform, mainPkg: *mainPkg, revision: *revision, created: created}, nil
}

// defaultPlatform is this machine's architecture when it is one we build for,
// like `docker build`; pass --platform to build for EKS nodes of another kind.
func defaultPlatform() string {
	if p := "linux/" + runtime.GOARCH; platforms[p] {
		return p
	}
	return "linux/amd64"
}

// sourceDateEpoch is the time stamped on every file and on the image. The
// reproducible-builds convention SOURCE_DATE_EPOCH sets it; otherwise it is the
// Unix epoch, so that rebuilding the same source gives the same digest.
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	secs, err := strconv.ParseInt(v, 10, 64)
	if err != nil || secs < 0 || secs > 253402300799 { // up to year 9999
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970 as a whole number", v)
	}
	return time.Unix(secs, 0).UTC(), nil
}

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parseBuildFlags(args)
	if err != nil {
		return err
	}
	binary, err := compile(ctx, opts.mainPkg, opts.platform, stderr)
	if err != nil {
		return err
	}
	img, err := newImage(binary, opts)
	if err != nil {
		return err
	}
	if err := writeTarball(opts.out, opts.tag, img); err != nil {
		return err
	}
	return report(stdout, opts, img)
}

// compile builds a static, stripped binary of pkg for the platform.
func compile(ctx context.Context, pkg, platform string, stderr io.Writer) ([]byte, error) {
	dir, err := os.MkdirTemp("", "omikuji-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "omikuji")
	goos, goarch, _ := strings.Cut(platform, "/")
	// -buildvcs=false: the revision goes into a label when asked for, and a
	// build must not depend on whether .git is present or readable.
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build %s for %s: %w", pkg, platform, err)
	}
	return os.ReadFile(out)
}

// goTool is the go command that runs this program, so that `go run` with a
// given toolchain also builds the image with it.
func goTool() string {
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newImage assembles the image: no base, one layer, a config saying who runs
// what.
func newImage(binary []byte, opts buildOptions) (v1.Image, error) {
	layerTar, err := rootFS(binary, opts.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
	if err != nil {
		return nil, err
	}
	goos, goarch, _ := strings.Cut(opts.platform, "/")
	labels := map[string]string{
		"org.opencontainers.image.title":       "omikuji",
		"org.opencontainers.image.description": "Japanese fortune slips on Kubernetes: the load balancer draws the lot.",
		"org.opencontainers.image.source":      sourceURL,
	}
	if opts.revision != "" {
		labels["org.opencontainers.image.revision"] = opts.revision
	}
	user := fmt.Sprintf("%d:%d", uid, uid)
	cfg := &v1.ConfigFile{
		Architecture: goarch,
		OS:           goos,
		Created:      v1.Time{Time: opts.created},
		RootFS:       v1.RootFS{Type: "layers"},
		Config: v1.Config{
			User:         user,
			Entrypoint:   []string{"/" + binaryPath},
			Cmd:          []string{"serve"},
			ExposedPorts: map[string]struct{}{port: {}},
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			WorkingDir:   "/",
			Labels:       labels,
		},
	}
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: opts.created},
			CreatedBy: "go run ./tools/image build",
			Comment:   "static omikuji binary, /etc/passwd and /etc/group for user " + user,
		},
	})
}

// rootFS is the layer: the binary plus the two files that let tools (and
// `id`-like lookups) name user 65532. Owners, modes and times are fixed.
func rootFS(binary []byte, modTime time.Time) ([]byte, error) {
	passwd := "root:x:0:0:root:/root:/sbin/nologin\n" +
		fmt.Sprintf("nonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", uid, uid)
	group := "root:x:0:\n" + fmt.Sprintf("nonroot:x:%d:\n", uid)
	entries := []struct {
		name     string
		mode     int64
		owner    int
		contents []byte
		dir      bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/group", mode: 0o644, contents: []byte(group)},
		{name: "etc/passwd", mode: 0o644, contents: []byte(passwd)},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, owner: uid, dir: true},
		{name: binaryPath, mode: 0o755, owner: uid, contents: binary},
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{
			Name:    e.name,
			Mode:    e.mode,
			Uid:     e.owner,
			Gid:     e.owner,
			ModTime: modTime,
			Format:  tar.FormatPAX,
		}
		if e.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.contents))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.contents); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeTarball writes the docker-archive next to its final path and renames it
// into place, so a failed or interrupted build leaves no partial file.
func writeTarball(path string, tag name.Tag, img v1.Image) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tarball.Write(tag, img, tmp); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func report(w io.Writer, opts buildOptions, img v1.Image) error {
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	var compressed, uncompressed int64
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			return err
		}
		compressed += size
		rc, err := l.Uncompressed()
		if err != nil {
			return err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
		uncompressed += n
	}
	fi, err := os.Stat(opts.out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "wrote %s\n", opts.out)
	fmt.Fprintf(w, "  tag      %s\n", opts.tag)
	fmt.Fprintf(w, "  platform %s\n", opts.platform)
	fmt.Fprintf(w, "  digest   %s\n", digest)
	fmt.Fprintf(w, "  size     %s compressed, %s unpacked, %s tarball\n", mib(compressed), mib(uncompressed), mib(fi.Size()))
	return nil
}

func mib(n int64) string {
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}
