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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's fixed facts. The Dockerfile states the same ones; the
// Kubernetes manifests rely on the user and the port.
const (
	binaryPath = "omikuji" // in the layer, i.e. /omikuji
	uid        = 65532     // "nonroot", as in distroless: runs the binary
	port       = "8081/tcp"
	sourceURL  = "https://github.com/omikuji/omikuji"
)

// supported are the platforms EKS nodes run: x86 and Graviton.
var supported = []string{"linux/amd64", "linux/arm64"}

// buildOptions is what `image build` was asked to do.
type buildOptions struct {
	tar       string   // docker-archive of platforms[0], or ""
	oci       string   // OCI layout with the index of all platforms, or ""
	tag       name.Tag // recorded in both
	platforms []string // "linux/amd64", ...; the first one goes into the tarball
	mainPkg   string   // the package go build compiles
	revision  string   // optional source revision for the OCI labels
	version   string   // optional version for the OCI labels and the SBOM
	created   time.Time
}

func parseBuildFlags(args []string) (buildOptions, error) {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	tar := fs.String("o", "", "write a docker-archive `file` of the first platform")
	oci := fs.String("oci", "", "write an OCI layout `dir` holding the index of every platform")
	tag := fs.String("tag", "omikuji:dev", "image name and tag recorded in the outputs")
	platform := fs.String("platform", strings.Join(defaultPlatforms(), ","), "target platforms, comma-separated")
	mainPkg := fs.String("main", "./cmd/omikuji", "Go package to build into /omikuji")
	revision := fs.String("revision", "", "source revision for the org.opencontainers.image.revision label")
	version := fs.String("version", "", "version for the org.opencontainers.image.version label and the SBOM")
	if err := fs.Parse(args); err != nil {
		return buildOptions{}, usageError{err}
	}
	if fs.NArg() > 0 {
		return buildOptions{}, usagef("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *tar == "" && *oci == "" {
		return buildOptions{}, usagef("-o FILE.tar or --oci DIR is required")
	}
	t, err := name.NewTag(*tag)
	if err != nil {
		return buildOptions{}, usagef("--tag %q: %v", *tag, err)
	}
	var platforms []string
	for _, p := range strings.Split(*platform, ",") {
		if !slices.Contains(supported, p) {
			return buildOptions{}, usagef("--platform %q: want %s, comma-separated", p, strings.Join(supported, " or "))
		}
		if slices.Contains(platforms, p) {
			return buildOptions{}, usagef("--platform %s given twice", p)
		}
		platforms = append(platforms, p)
	}
	if *oci == "" {
		platforms = platforms[:1] // only the tarball's is needed
	}
	if *mainPkg == "" {
		return buildOptions{}, usagef("--main must name a Go package")
	}
	for flag, v := range map[string]string{"--revision": *revision, "--version": *version} {
		if strings.ContainsAny(v, "\x00\r\n") || len(v) > 128 {
			return buildOptions{}, usagef("%s %q: want one short line", flag, v)
		}
	}
	if *oci != "" {
		if err := replaceableLayout(*oci); err != nil {
			return buildOptions{}, usageError{err}
		}
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return buildOptions{}, usageError{err}
	}
	return buildOptions{tar: *tar, oci: *oci, tag: t, platforms: platforms, mainPkg: *mainPkg,
		revision: *revision, version: *version, created: created}, nil
}

// defaultPlatforms lists this machine's platform first when it is one we
// build for, like `docker build`, so that -o alone gives an image this
// machine can run.
func defaultPlatforms() []string {
	native := "linux/" + runtime.GOARCH
	if !slices.Contains(supported, native) {
		return slices.Clone(supported)
	}
	return append([]string{native}, slices.DeleteFunc(slices.Clone(supported), func(p string) bool { return p == native })...)
}

// sourceDateEpoch is the time stamped on every file, the SBOM and the image.
// The reproducible-builds convention SOURCE_DATE_EPOCH sets it (make aws-up
// passes the commit time); otherwise it is the Unix epoch, so that rebuilding
// the same source gives the same digest.
func sourceDateEpoch() (time.Time, error) {
	v := os.Getenv("SOURCE_DATE_EPOCH")
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
	images := make([]v1.Image, len(opts.platforms))
	for i, platform := range opts.platforms {
		binary, err := compile(ctx, opts.mainPkg, platform, stderr)
		if err != nil {
			return err
		}
		if images[i], err = newImage(binary, platform, opts); err != nil {
			return err
		}
	}
	var index v1.ImageIndex
	if opts.oci != "" {
		if index, err = newIndex(images, opts); err != nil {
			return err
		}
	}

	// Every output is written in full next to its final path before any is
	// put in place, so a failure or Ctrl-C leaves nothing half-done.
	var outputs []staged
	defer func() {
		for _, o := range outputs {
			os.RemoveAll(o.tmp)
		}
	}()
	if opts.tar != "" {
		o, err := stageTarball(opts.tar, opts.tag, images[0])
		if err != nil {
			return err
		}
		outputs = append(outputs, o)
	}
	if opts.oci != "" {
		o, err := stageLayout(opts.oci, opts.tag, index)
		if err != nil {
			return err
		}
		outputs = append(outputs, o)
	}
	for len(outputs) > 0 {
		if err := outputs[0].commit(); err != nil {
			return err
		}
		outputs = outputs[1:]
	}
	return report(stdout, opts, images, index)
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

// goTool is the go command on PATH. `go run` and `go test` put their own
// toolchain's bin first on PATH, so the image is built with the toolchain
// that runs this program.
func goTool() string { return "go" }

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// newImage assembles the image of one platform: no base, one layer, a config
// saying who runs what.
func newImage(binary []byte, platform string, opts buildOptions) (v1.Image, error) {
	bom, err := sbom(binary, opts.version, opts.created)
	if err != nil {
		return nil, err
	}
	layerTar, err := rootFS(binary, bom, opts.created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	goos, goarch, _ := strings.Cut(platform, "/")
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
			Labels:       ociAnnotations(opts),
		},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   v1.Time{Time: opts.created},
			CreatedBy: "go run ./tools/image build",
			Comment:   "static omikuji binary owned by root, its SBOM, /etc/passwd and /etc/group for user " + user,
		},
	})
}

// ociAnnotations are the org.opencontainers.image.* keys, as labels of each
// image and as annotations of the index. There is no licenses key: the
// repository has no licence file to take it from.
func ociAnnotations(opts buildOptions) map[string]string {
	a := map[string]string{
		"org.opencontainers.image.title":       "omikuji",
		"org.opencontainers.image.description": "Japanese fortune slips on Kubernetes: the load balancer draws the lot.",
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.created":     opts.created.Format(time.RFC3339),
	}
	if opts.revision != "" {
		a["org.opencontainers.image.revision"] = opts.revision
	}
	if opts.version != "" {
		a["org.opencontainers.image.version"] = opts.version
	}
	return a
}

// newIndex is the OCI image index that lets every node pull the image of its
// own platform under one tag.
func newIndex(images []v1.Image, opts buildOptions) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, len(images))
	for i, img := range images {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		adds[i] = mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: cf.OS, Architecture: cf.Architecture},
		}}
	}
	index := mutate.AppendManifests(empty.Index, adds...)
	return mutate.Annotations(index, ociAnnotations(opts)).(v1.ImageIndex), nil
}

// rootFS is the layer: the binary, its SBOM and the two files that let tools
// name user 65532. The binary and the SBOM belong to root and are read-only,
// so the user that runs the server cannot change them even on a writable
// root filesystem. Owners, modes and times are fixed.
func rootFS(binary, bom []byte, modTime time.Time) ([]byte, error) {
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
		{name: binaryPath, mode: 0o555, contents: binary},
		{name: sbomPath, mode: 0o444, contents: bom},
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

// staged is an output written in full at tmp, waiting to be renamed to final.
type staged struct {
	tmp, final string
	replace    bool // final is an earlier OCI layout, removed first
}

func (s staged) commit() error {
	if s.replace {
		if err := os.RemoveAll(s.final); err != nil {
			return err
		}
	}
	return os.Rename(s.tmp, s.final)
}

// stageTarball writes the docker-archive ("ctr images import", "docker
// load") of one image next to path.
func stageTarball(path string, tag name.Tag, img v1.Image) (staged, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return staged{}, err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return staged{}, err
	}
	s := staged{tmp: tmp.Name(), final: path}
	err = tarball.Write(tag, img, tmp)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(s.tmp)
		return staged{}, fmt.Errorf("writing %s: %w", path, err)
	}
	return s, nil
}

// stageLayout writes an OCI image layout next to dir whose index.json names
// the image index by its tag, as `push --oci` and tools like crane, skopeo
// and oras read it.
func stageLayout(dir string, tag name.Tag, index v1.ImageIndex) (staged, error) {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return staged{}, err
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".*.tmp")
	if err != nil {
		return staged{}, err
	}
	err = os.Chmod(tmp, 0o755)
	if err == nil {
		var p layout.Path
		p, err = layout.Write(tmp, empty.Index)
		if err == nil {
			err = p.AppendIndex(index, layout.WithAnnotations(map[string]string{
				"org.opencontainers.image.ref.name": tag.String(),
			}))
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return staged{}, fmt.Errorf("writing %s: %w", dir, err)
	}
	return staged{tmp: tmp, final: dir, replace: fileExists(dir)}, nil
}

// replaceableLayout refuses an --oci directory that holds anything but an
// earlier OCI layout, which the build replaces.
func replaceableLayout(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--oci %s: %w", dir, err)
	}
	if !fileExists(filepath.Join(dir, "oci-layout")) {
		return fmt.Errorf("--oci %s: exists and is not an OCI layout; give a new or empty directory", dir)
	}
	return nil
}

func report(w io.Writer, opts buildOptions, images []v1.Image, index v1.ImageIndex) error {
	if opts.tar != "" {
		fmt.Fprintf(w, "wrote %s (docker-archive, %s)\n", opts.tar, opts.platforms[0])
	}
	if index != nil {
		digest, err := index.Digest()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s (OCI layout)\n", opts.oci)
		fmt.Fprintf(w, "  index    %s\n", digest)
	}
	fmt.Fprintf(w, "  tag      %s\n", opts.tag)
	for i, img := range images {
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		compressed, unpacked, err := sizes(img)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  %-11s %s  %s compressed, %s unpacked\n", opts.platforms[i], digest, mib(compressed), mib(unpacked))
	}
	return nil
}

// sizes are what a registry stores and what a node unpacks.
func sizes(img v1.Image) (compressed, unpacked int64, err error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			return 0, 0, err
		}
		compressed += size
		rc, err := l.Uncompressed()
		if err != nil {
			return 0, 0, err
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return 0, 0, err
		}
		unpacked += n
	}
	return compressed, unpacked, nil
}

func mib(n int64) string {
	return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20))
}
