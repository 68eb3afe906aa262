package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"
)

// Components are the upstream programs built from k8s.io/kubernetes.
var Components = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// etcdPackage is etcd's server, at the version the upstream module's
// Kubernetes release itself requires. Debian's etcd 3.4 is older than any
// that Kubernetes 1.36 supports: without watch progress notifications the
// apiserver's watch cache answers "Too large resource version" and
// informers fall seconds behind.
const etcdPackage = "go.etcd.io/etcd/server/v3"

// DefaultCacheRoot keeps built binaries outside the clone, so a fresh clone
// on the same machine reuses them.
const DefaultCacheRoot = "/var/cache/omikuji-e2e"

// BuildOptions configure Build.
type BuildOptions struct {
	UpstreamDir string    // the module pinning k8s.io/kubernetes (test/e2e/upstream)
	CacheRoot   string    // empty means DefaultCacheRoot
	Log         io.Writer // nil discards progress
}

// Build returns a directory holding the five upstream binaries, building
// them only when the cache has no entry for this exact recipe: the upstream
// module's go.mod and go.sum, the Go version and the link flags. A cold
// build takes about 20 minutes on 2 cores; a cache hit takes milliseconds.
func Build(ctx context.Context, opts BuildOptions) (string, error) {
	log := opts.Log
	if log == nil {
		log = io.Discard
	}
	root := opts.CacheRoot
	if root == "" {
		root = DefaultCacheRoot
	}
	version, err := kubernetesVersion(filepath.Join(opts.UpstreamDir, "go.mod"))
	if err != nil {
		return "", err
	}
	ldflags := versionLDFlags(version)
	key, err := buildKey(ctx, opts.UpstreamDir, ldflags)
	if err != nil {
		return "", err
	}
	binDir := filepath.Join(root, key, "bin")
	if complete(binDir) {
		fmt.Fprintf(log, "upstream: Kubernetes %s binaries cached in %s\n", version, binDir)
		return binDir, nil
	}
	if err := os.MkdirAll(filepath.Join(root, key), 0o755); err != nil {
		return "", err
	}
	// One build at a time per key; a second caller waits and then finds
	// the finished binaries.
	lock, err := os.OpenFile(filepath.Join(root, key, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it anyway
	if complete(binDir) {
		return binDir, nil
	}
	tmp := binDir + ".partial"
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	pkgs := make([]string, len(Components))
	for i, c := range Components {
		pkgs[i] = "k8s.io/kubernetes/cmd/" + c
	}
	fmt.Fprintf(log, "upstream: building Kubernetes %s (%s) and etcd into %s; cold this takes ~20 min on 2 cores\n",
		version, strings.Join(Components, ", "), binDir)
	start := time.Now()
	build := func(out, ldflags string, pkgs ...string) error {
		args := append([]string{"-n", "10", "go", "build", "-p", "2", "-trimpath", "-buildvcs=false", "-ldflags", ldflags, "-o", out}, pkgs...)
		cmd := exec.CommandContext(ctx, "nice", args...)
		cmd.Dir = opts.UpstreamDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		cmd.Stdout, cmd.Stderr = log, log
		return cmd.Run()
	}
	if err := build(tmp+"/", ldflags, pkgs...); err != nil {
		return "", fmt.Errorf("building upstream Kubernetes: %w", err)
	}
	// Its package path ends in /v3, so the binary is named here.
	if err := build(filepath.Join(tmp, "etcd"), "-s -w", etcdPackage); err != nil {
		return "", fmt.Errorf("building etcd: %w", err)
	}
	if err := os.Rename(tmp, binDir); err != nil {
		return "", err
	}
	fmt.Fprintf(log, "upstream: built in %s\n", time.Since(start).Round(time.Second))
	return binDir, nil
}

func complete(binDir string) bool {
	for _, c := range append(Components, "etcd") {
		if fi, err := os.Stat(filepath.Join(binDir, c)); err != nil || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

var requireKubernetes = regexp.MustCompile(`(?m)^\s*(?:require\s+)?k8s\.io/kubernetes\s+(v1\.(\d+)\.\d+)(?:\s|$)`)

// kubernetesVersion reads the pinned k8s.io/kubernetes version from go.mod.
func kubernetesVersion(gomod string) (string, error) {
	b, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	m := requireKubernetes.FindSubmatch(b)
	if m == nil {
		return "", fmt.Errorf("%s: no k8s.io/kubernetes requirement", gomod)
	}
	return string(m[1]), nil
}

// versionLDFlags stamps the version the binaries report (they would say
// v0.0.0 otherwise, which kubelet/apiserver skew checks dislike).
func versionLDFlags(version string) string {
	minor := strings.Split(version, ".")[1]
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+version,
			"-X", pkg+".gitMajor=1",
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean")
	}
	return strings.Join(flags, " ")
}

// buildKey hashes everything that decides the binaries' content.
func buildKey(ctx context.Context, upstreamDir, ldflags string) (string, error) {
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum"} {
		b, err := os.ReadFile(filepath.Join(upstreamDir, f))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	goVersion, err := run(ctx, "go", "env", "GOVERSION", "GOARCH")
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "go %s\nldflags %s\ncomponents %s,%s\n", goVersion, ldflags, strings.Join(Components, ","), etcdPackage)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}
