package infra

// The image step of the AWS flow runs the real tools/image: the stand-in
// builds the real OCI index and pushes it, with ECR's password, to an
// in-memory registry on 127.0.0.1 in place of ECR, which moto does not
// serve. The flow test then pulls the tag back for each platform.

import (
	"bytes"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	standinRegistryEnv = "OMIKUJI_STANDIN_REGISTRY" // host:port of the registry that stands in for ECR
	standinRepoEnv     = "OMIKUJI_STANDIN_REPO"     // the repository root, where tools/image lives
)

// startRegistry serves an in-memory registry on 127.0.0.1 that, like ECR,
// wants user AWS and a password.
func startRegistry(t *testing.T) string {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "AWS" || p == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="ecr"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// imageStandin runs `go run ./tools/image` with the script's arguments; a
// push goes to the stand-in registry instead of ECR's host.
func imageStandin(args []string, dir string) error {
	args = slices.Clone(args)
	stdin := io.Reader(os.Stdin)
	if args[0] == "push" {
		for i, a := range args[:len(args)-1] {
			if a == "--to" {
				_, repo, _ := strings.Cut(args[i+1], "/")
				args[i+1] = os.Getenv(standinRegistryEnv) + "/" + repo
			}
		}
		password, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "push-password"), password, 0o600); err != nil {
			return err
		}
		stdin = bytes.NewReader(password)
	}
	cmd := exec.Command("go", append([]string{"run", "./tools/image"}, args...)...)
	cmd.Dir = os.Getenv(standinRepoEnv)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, os.Stdout, os.Stderr
	return cmd.Run()
}

// checkPushedIndex pulls repo:tag from the stand-in registry as a node of
// each kind would and checks that it is the OCI index of both platforms,
// dated and labelled from the commit.
func checkPushedIndex(t *testing.T, host, repo, tag, root string) {
	t.Helper()
	ref, err := name.ParseReference(host + "/" + repo + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(&authn.Basic{Username: "AWS", Password: "x"})
	desc, err := remote.Get(ref, auth)
	if err != nil {
		t.Fatalf("the pushed tag %s: %v", ref, err)
	}
	if desc.MediaType != types.OCIImageIndex {
		t.Fatalf("%s is a %s, want an OCI image index", ref, desc.MediaType)
	}
	index, err := desc.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var platforms []string
	for _, d := range m.Manifests {
		if d.Platform != nil {
			platforms = append(platforms, d.Platform.String())
		}
	}
	slices.Sort(platforms)
	if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
		t.Errorf("index platforms %v, want %v", platforms, want)
	}
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := remote.Image(ref, auth, remote.WithPlatform(p))
		if err != nil {
			t.Errorf("a %s node cannot pull %s: %v", p, ref, err)
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != p.Architecture || cf.Config.User != "65532:65532" {
			t.Errorf("%s pulls an image for %s run by %q", p, cf.Architecture, cf.Config.User)
		}
	}
	head := strings.TrimSpace(run(t, root, nil, "", "git", "rev-parse", "HEAD").stdout)
	commitTime := strings.TrimSpace(run(t, root, nil, "", "git", "log", "-1", "--format=%cI").stdout)
	when, err := time.Parse(time.RFC3339, commitTime)
	if err != nil {
		t.Fatalf("commit time %q: %v", commitTime, err)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.revision": head,
		"org.opencontainers.image.version":  tag,
		"org.opencontainers.image.created":  when.UTC().Format(time.RFC3339),
	} {
		if got := m.Annotations[k]; got != want {
			t.Errorf("index annotation %s = %q, want %q", k, got, want)
		}
	}
}
