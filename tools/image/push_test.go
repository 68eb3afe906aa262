package main

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// newRegistry serves an in-memory OCI registry on 127.0.0.1. With a user, it
// demands HTTP basic auth as ECR does (user AWS, a token as password).
func newRegistry(t *testing.T, user, password string) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := reg
	if user != "" {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			reg.ServeHTTP(w, r)
		})
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// isolateDockerConfig points the default keychain at an empty config so that
// the tests never read the real ~/.docker/config.json.
func isolateDockerConfig(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
}

func TestPushAndPull(t *testing.T) {
	isolateDockerConfig(t)
	tarPath, _ := builtImage(t)
	host := newRegistry(t, "", "")
	dest := host + "/omikuji:test"

	code, stdout, stderr := runTool(t, "", "push", "--tar", tarPath, "--to", dest)
	if code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	want, err := readImage(t, tarPath).Digest()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout, want.String()) {
		t.Errorf("push output %q does not name the digest %s", stdout, want)
	}

	ref, err := name.ParseReference(dest)
	if err != nil {
		t.Fatal(err)
	}
	pulled, err := remote.Image(ref)
	if err != nil {
		t.Fatalf("pulling %s back: %v", dest, err)
	}
	got, err := pulled.Digest()
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("pulled digest %s, want the built %s", got, want)
	}
	cf, err := pulled.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || cf.Config.Entrypoint[0] != "/omikuji" {
		t.Errorf("pulled config: user %q entrypoint %q", cf.Config.User, cf.Config.Entrypoint)
	}
	if _, ok := layerFiles(t, pulled)["omikuji"]; !ok {
		t.Errorf("pulled image has no /omikuji")
	}
}

// The index goes up whole: a node of either kind that pulls the tag gets the
// image of its own platform, byte for byte the one built.
func TestPushIndexResolvesEveryPlatform(t *testing.T) {
	isolateDockerConfig(t)
	_, ociDir := builtImage(t)
	host := newRegistry(t, "", "")
	dest := host + "/omikuji/fortune:g0123"

	code, stdout, stderr := runTool(t, "", "push", "--oci", ociDir, "--to", dest)
	if code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	built := readIndex(t, ociDir)
	want, _ := built.Digest()
	if !strings.Contains(stdout, want.String()) {
		t.Errorf("push output %q does not name the index digest %s", stdout, want)
	}
	ref, err := name.ParseReference(dest)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Get(ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.MediaType != types.OCIImageIndex || desc.Digest != want {
		t.Errorf("the tag resolves to %s %s, want the index %s", desc.MediaType, desc.Digest, want)
	}
	for platform, img := range platformImages(t, built) {
		p, err := v1.ParsePlatform(platform)
		if err != nil {
			t.Fatal(err)
		}
		pulled, err := remote.Image(ref, remote.WithPlatform(*p))
		if err != nil {
			t.Fatalf("pulling %s for %s: %v", dest, platform, err)
		}
		got, _ := pulled.Digest()
		if w, _ := img.Digest(); got != w {
			t.Errorf("%s: pulled %s, want the built %s", platform, got, w)
		}
		cf, err := pulled.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != platform {
			t.Errorf("%s: pulled an image for %s/%s", platform, cf.OS, cf.Architecture)
		}
	}
}

func TestPushWithPasswordStdin(t *testing.T) {
	isolateDockerConfig(t)
	_, ociDir := builtImage(t)
	host := newRegistry(t, "AWS", "token-from-aws-ecr")
	dest := host + "/omikuji:auth"

	code, _, stderr := runTool(t, "wrong-token\n", "push", "--oci", ociDir, "--to", dest, "--username", "AWS", "--password-stdin")
	if code != 1 || !strings.Contains(stderr, "pushing to") {
		t.Errorf("wrong password: exit %d, stderr %q; want exit 1 and the registry's refusal", code, stderr)
	}
	code, _, stderr = runTool(t, "token-from-aws-ecr\n", "push", "--oci", ociDir, "--to", dest, "--username", "AWS", "--password-stdin")
	if code != 0 {
		t.Fatalf("right password: exit %d: %s", code, stderr)
	}
	ref, _ := name.ParseReference(dest)
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: "token-from-aws-ecr"})
	if _, err := remote.Head(ref, auth); err != nil {
		t.Errorf("the pushed tag is not in the registry: %v", err)
	}
}

func TestPushRejectsBadInput(t *testing.T) {
	isolateDockerConfig(t)
	tarPath, ociDir := builtImage(t)
	garbage := filepath.Join(t.TempDir(), "garbage.tar")
	if err := os.WriteFile(garbage, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Nothing may reach a registry when the input is bad: this one fails
	// the test on any request.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer srv.Close()
	dest := strings.TrimPrefix(srv.URL, "http://") + "/omikuji:x"

	cases := []struct {
		name  string
		stdin string
		args  []string
		error string
	}{
		{"no flags", "", []string{"push"}, "are required"},
		{"no destination", "", []string{"push", "--tar", tarPath}, "are required"},
		{"both inputs", "", []string{"push", "--tar", tarPath, "--oci", ociDir, "--to", dest}, "one of --oci DIR or --tar FILE"},
		{"not a layout", "", []string{"push", "--oci", t.TempDir(), "--to", dest}, "--oci"},
		{"missing layout", "", []string{"push", "--oci", "/nonexistent/oci", "--to", dest}, "--oci"},
		{"bad reference", "", []string{"push", "--tar", tarPath, "--to", "Not/A Reference"}, "--to"},
		{"missing tar", "", []string{"push", "--tar", "/nonexistent/image.tar", "--to", dest}, "--tar"},
		{"not a tarball", "", []string{"push", "--tar", garbage, "--to", dest}, "--tar"},
		{"user without password", "", []string{"push", "--tar", tarPath, "--to", dest, "--username", "AWS"}, "go together"},
		{"password without user", "x\n", []string{"push", "--tar", tarPath, "--to", dest, "--password-stdin"}, "go together"},
		{"empty password", "\n", []string{"push", "--tar", tarPath, "--to", dest, "--username", "AWS", "--password-stdin"}, "non-empty line"},
		{"two-line password", "a\nb\n", []string{"push", "--tar", tarPath, "--to", dest, "--username", "AWS", "--password-stdin"}, "one non-empty line"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runTool(t, tc.stdin, tc.args...)
			if code != 2 || !strings.Contains(stderr, tc.error) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, tc.error)
			}
		})
	}
}
