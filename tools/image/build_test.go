package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/omikuji/omikuji/internal/testkit"
)

// imageBudget is the documented ceiling for the unpacked image (docs/image.md).
const imageBudget = 15_000_000

// testMain is the package the tests put into the image: the real server.
const testMain = "github.com/omikuji/omikuji/cmd/omikuji"

// runTool runs the command in-process, as main would, and returns its exit
// code and output.
func runTool(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

var (
	builtOnce sync.Once
	builtDir  string // holds image.tar and oci/
	builtErr  string
)

// builtImage is one build at the start of the package's tests, shared by
// those that only read it: the OCI layout of both platforms and the tarball
// of this machine's.
func builtImage(t *testing.T) (tarPath, ociDir string) {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "omikuji-image-test-")
		if err != nil {
			builtErr = err.Error()
			return
		}
		code, _, stderr := runTool(t, "", "build", "-o", filepath.Join(dir, "image.tar"), "--oci", filepath.Join(dir, "oci"),
			"--main", testMain, "--version", testVersion, "--revision", testRevision)
		if code != 0 {
			builtErr = stderr
			return
		}
		builtDir = dir
	})
	if builtDir == "" {
		t.Fatalf("building the image failed: %s", builtErr)
	}
	return filepath.Join(builtDir, "image.tar"), filepath.Join(builtDir, "oci")
}

const (
	testVersion  = "v0.0.0-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
)

// TestLicenseIsTheRepositorys ties the licence the image and its SBOM
// declare to the LICENSE file.
func TestLicenseIsTheRepositorys(t *testing.T) {
	text, err := os.ReadFile("../../LICENSE")
	if err != nil {
		t.Fatal(err)
	}
	if license != "Apache-2.0" || !strings.HasPrefix(strings.TrimSpace(string(text)), "Apache License\n                           Version 2.0, January 2004") ||
		!strings.Contains(string(text), "END OF TERMS AND CONDITIONS") {
		t.Errorf("LICENSE is not the Apache License 2.0 that the image declares as %q", license)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func readImage(t *testing.T, path string) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(path, nil)
	if err != nil {
		t.Fatalf("reading %s back: %v", path, err)
	}
	return img
}

// readIndex reads the image index back from an OCI layout, as push does.
func readIndex(t *testing.T, dir string) v1.ImageIndex {
	t.Helper()
	index, err := readLayout(dir)
	if err != nil {
		t.Fatalf("reading the OCI layout %s back: %v", dir, err)
	}
	return index
}

// platformImages maps "os/arch" to the index's image for it.
func platformImages(t *testing.T, index v1.ImageIndex) map[string]v1.Image {
	t.Helper()
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	images := map[string]v1.Image{}
	for _, d := range m.Manifests {
		if d.Platform == nil {
			t.Fatalf("index entry %s has no platform", d.Digest)
		}
		img, err := index.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		images[d.Platform.OS+"/"+d.Platform.Architecture] = img
	}
	return images
}

type layerFile struct {
	header   *tar.Header
	contents []byte
}

// layerFiles unpacks every layer of img into memory, keyed by path.
func layerFiles(t *testing.T, img v1.Image) map[string]layerFile {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := make(map[string]layerFile)
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[h.Name] = layerFile{header: h, contents: b}
		}
		rc.Close()
	}
	return files
}

func TestImageConfig(t *testing.T) {
	tarPath, _ := builtImage(t)
	img := readImage(t, tarPath)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532 (non-root)", c.User)
	}
	if strings.Join(c.Entrypoint, " ") != "/omikuji" || strings.Join(c.Cmd, " ") != "serve" {
		t.Errorf("Entrypoint %q Cmd %q, want [/omikuji] [serve]", c.Entrypoint, c.Cmd)
	}
	if _, ok := c.ExposedPorts["8081/tcp"]; !ok || len(c.ExposedPorts) != 1 {
		t.Errorf("ExposedPorts = %v, want only 8081/tcp", c.ExposedPorts)
	}
	if c.WorkingDir != "/" || len(c.Env) != 1 || !strings.HasPrefix(c.Env[0], "PATH=") {
		t.Errorf("WorkingDir %q Env %q, want / and PATH only", c.WorkingDir, c.Env)
	}
	assertOCIKeys(t, "image labels", c.Labels, "1970-01-01T00:00:00Z")
	if cf.OS != "linux" || "linux/"+cf.Architecture != defaultPlatforms()[0] {
		t.Errorf("platform %s/%s, want this machine's %s", cf.OS, cf.Architecture, defaultPlatforms()[0])
	}
	if !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("Created = %v, want the Unix epoch when SOURCE_DATE_EPOCH is unset", cf.Created)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Errorf("%d layers, want 1", len(layers))
	}
}

// assertOCIKeys checks the org.opencontainers.image.* keys the build was
// given and the ones it always sets.
func assertOCIKeys(t *testing.T, what string, got map[string]string, created string) {
	t.Helper()
	want := map[string]string{
		"org.opencontainers.image.title":    "omikuji",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.source":   sourceURL,
		"org.opencontainers.image.version":  testVersion,
		"org.opencontainers.image.revision": testRevision,
		"org.opencontainers.image.created":  created,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got[k], v)
		}
	}
	if got["org.opencontainers.image.description"] == "" {
		t.Errorf("%s: no org.opencontainers.image.description", what)
	}
}

func TestImageFiles(t *testing.T) {
	tarPath, _ := builtImage(t)
	files := layerFiles(t, readImage(t, tarPath))
	bin, ok := files["omikuji"]
	if !ok {
		t.Fatalf("no /omikuji in the layer; files: %v", keys(files))
	}
	// Root's and read-only: the server's user cannot replace its own binary.
	if h := bin.header; h.Typeflag != tar.TypeReg || h.Mode != 0o555 || h.Uid != 0 || h.Gid != 0 {
		t.Errorf("/omikuji: type %c mode %o owner %d:%d, want a 0555 file owned by 0:0", h.Typeflag, h.Mode, h.Uid, h.Gid)
	}
	if h := files[sbomPath].header; h == nil || h.Mode != 0o444 || h.Uid != 0 || h.Gid != 0 {
		t.Errorf("/%s: %+v, want a 0444 file owned by 0:0", sbomPath, h)
	}
	if h := files["home/nonroot/"].header; h == nil || h.Uid != uid {
		t.Errorf("/home/nonroot: %+v, want a directory owned by %d", h, uid)
	}
	if !strings.Contains(string(files["etc/passwd"].contents), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot 65532 entry:\n%s", files["etc/passwd"].contents)
	}
	if !strings.Contains(string(files["etc/group"].contents), "nonroot:x:65532:") {
		t.Errorf("/etc/group has no nonroot 65532 entry:\n%s", files["etc/group"].contents)
	}
	for name, f := range files {
		if !f.header.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v, want the fixed epoch", name, f.header.ModTime)
		}
	}

	// The binary must be static (no ELF interpreter: the image has no libc)
	// and must run on its own.
	path := filepath.Join(t.TempDir(), "omikuji")
	if err := os.WriteFile(path, bin.contents, 0o755); err != nil {
		t.Fatal(err)
	}
	assertStaticELF(t, path, elfMachine())
	assertRuns(t, path)
}

func assertStaticELF(t *testing.T, path string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatalf("/omikuji is not an ELF binary: %v", err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Errorf("ELF machine %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/omikuji asks for a dynamic loader; want a static binary")
		}
	}
	if f.Section(".symtab") != nil {
		t.Errorf("/omikuji has a symbol table; want it stripped (-s -w)")
	}
}

// assertRuns starts the extracted binary as the image would (serve) and
// draws a fortune from it.
func assertRuns(t *testing.T, path string) {
	t.Helper()
	if err := exec.Command(path, "no-such-command").Run(); exitCode(err) != 2 {
		t.Errorf("omikuji no-such-command: %v, want exit status 2", err)
	}
	// The build stamps --version and --revision into the binary.
	if out, err := exec.Command(path, "version").Output(); err != nil ||
		!strings.HasPrefix(string(out), "omikuji "+testVersion+"\ncommit  "+testRevision+"\ngo      go") {
		t.Errorf("omikuji version: %v\n%s\nwant %s, commit %s", err, out, testVersion, testRevision)
	}

	addr := testkit.FreeAddr(t)
	cmd := exec.Command(path, "serve", "--fortune", "great-fortune", "--addr", addr, "--drain", "0s")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("omikuji serve after SIGTERM: %v\n%s", err, logs.String())
			}
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			t.Errorf("omikuji serve did not stop within 10 s of SIGTERM")
		}
	}()

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := client.Get("http://" + addr + "/")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "大吉") {
				t.Errorf("GET /: %s, body %.200q; want 200 and 大吉", resp.Status, body)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the extracted omikuji never answered on %s: %v\n%s", addr, err, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func elfMachine() elf.Machine {
	f, err := elf.Open("/proc/self/exe")
	if err != nil {
		return elf.EM_NONE
	}
	defer f.Close()
	return f.Machine
}

// Every platform's image in the index stays under the documented budget,
// unpacked.
func TestImageSizeBudget(t *testing.T) {
	_, ociDir := builtImage(t)
	for platform, img := range platformImages(t, readIndex(t, ociDir)) {
		compressed, unpacked, err := sizes(img)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d bytes compressed, %d unpacked (budget %d)", platform, compressed, unpacked, imageBudget)
		var files int
		for _, f := range layerFiles(t, img) {
			files += len(f.contents)
		}
		if files > imageBudget {
			t.Errorf("%s: the unpacked files are %d bytes, over the %d budget", platform, files, imageBudget)
		}
	}
}

// The index holds one image per platform, each with a static binary for its
// machine, and the tarball is the index's image for this machine.
func TestIndexHasEveryPlatform(t *testing.T) {
	tarPath, ociDir := builtImage(t)
	index := readIndex(t, ociDir)
	m, err := index.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.OCIImageIndex {
		t.Errorf("index media type %s, want %s", m.MediaType, types.OCIImageIndex)
	}
	assertOCIKeys(t, "index annotations", m.Annotations, "1970-01-01T00:00:00Z")
	images := platformImages(t, index)
	machines := map[string]elf.Machine{"linux/amd64": elf.EM_X86_64, "linux/arm64": elf.EM_AARCH64}
	if len(images) != len(machines) {
		t.Errorf("index platforms %v, want %v", keys(images), keys(machines))
	}
	for platform, machine := range machines {
		img, ok := images[platform]
		if !ok {
			t.Errorf("no %s image in the index", platform)
			continue
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.OS+"/"+cf.Architecture != platform {
			t.Errorf("%s entry: config says %s/%s", platform, cf.OS, cf.Architecture)
		}
		if mt, _ := img.MediaType(); mt != types.OCIManifestSchema1 {
			t.Errorf("%s: manifest media type %s, want %s", platform, mt, types.OCIManifestSchema1)
		}
		assertOCIKeys(t, platform+" labels", cf.Config.Labels, "1970-01-01T00:00:00Z")
		bin := filepath.Join(t.TempDir(), "omikuji")
		if err := os.WriteFile(bin, layerFiles(t, img)["omikuji"].contents, 0o755); err != nil {
			t.Fatal(err)
		}
		assertStaticELF(t, bin, machine)
	}
	// A docker-archive keeps the config and the layers but not the
	// manifest's media types, so compare those.
	tarImg, native := readImage(t, tarPath), images[defaultPlatforms()[0]]
	want, _ := tarImg.ConfigName()
	got, _ := native.ConfigName()
	wantLayers, _ := tarImg.Layers()
	gotLayers, _ := native.Layers()
	if got != want || len(wantLayers) != 1 || len(gotLayers) != 1 {
		t.Fatalf("the tarball's image (config %s) is not the index's %s image (config %s)", want, defaultPlatforms()[0], got)
	}
	w, _ := wantLayers[0].Digest()
	g, _ := gotLayers[0].Digest()
	if g != w {
		t.Errorf("the tarball's layer %s is not the index's %s layer %s", w, defaultPlatforms()[0], g)
	}
}

// Two builds of the same source give the same index digest and the same
// tarball; SOURCE_DATE_EPOCH moves every timestamp, and so the digest.
func TestBuildIsReproducible(t *testing.T) {
	firstTar, firstOCI := builtImage(t)
	dir := t.TempDir()
	args := []string{"build", "-o", filepath.Join(dir, "again.tar"), "--oci", filepath.Join(dir, "again"),
		"--main", testMain, "--version", testVersion, "--revision", testRevision}
	code, stdout, stderr := runTool(t, "", args...)
	if code != 0 {
		t.Fatalf("second build: exit %d: %s", code, stderr)
	}
	d1, _ := readIndex(t, firstOCI).Digest()
	d2, _ := readIndex(t, filepath.Join(dir, "again")).Digest()
	if d1 != d2 {
		t.Errorf("two builds of the same source give the indexes %s and %s", d1, d2)
	}
	if !strings.Contains(stdout, d2.String()) {
		t.Errorf("build output does not print the index digest %s:\n%s", d2, stdout)
	}
	a, _ := os.ReadFile(firstTar)
	b, _ := os.ReadFile(filepath.Join(dir, "again.tar"))
	if !bytes.Equal(a, b) {
		t.Errorf("two builds of the same source give different tarballs (%d vs %d bytes)", len(a), len(b))
	}

	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	args[4] = filepath.Join(dir, "dated")
	if code, _, stderr := runTool(t, "", append([]string{"build"}, args[3:]...)...); code != 0 {
		t.Fatalf("build with SOURCE_DATE_EPOCH: exit %d: %s", code, stderr)
	}
	dated := readIndex(t, filepath.Join(dir, "dated"))
	d3, _ := dated.Digest()
	if d3 == d1 {
		t.Errorf("index digest %s did not change with SOURCE_DATE_EPOCH", d1)
	}
	m, _ := dated.IndexManifest()
	assertOCIKeys(t, "dated index", m.Annotations, "2023-11-14T22:13:20Z")
	for platform, img := range platformImages(t, dated) {
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if !cf.Created.Equal(time.Unix(1700000000, 0)) {
			t.Errorf("%s: Created = %v, want SOURCE_DATE_EPOCH", platform, cf.Created)
		}
		for name, f := range layerFiles(t, img) {
			if !f.header.ModTime.Equal(time.Unix(1700000000, 0)) {
				t.Errorf("%s: %s: mtime %v, want SOURCE_DATE_EPOCH", platform, name, f.header.ModTime)
			}
		}
	}
}

// -o alone with one foreign platform builds only that one.
func TestBuildArm64Tarball(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arm64.tar")
	code, stdout, stderr := runTool(t, "", "build", "-o", path, "--main", testMain, "--platform", "linux/arm64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "linux/amd64") {
		t.Errorf("built amd64 too:\n%s", stdout)
	}
	cf, err := readImage(t, path).ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" {
		t.Errorf("platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
}

// Bad input exits 2 and writes nothing; a failed build exits 1 and writes
// nothing.
func TestBuildRejectsBadInput(t *testing.T) {
	cases := []struct {
		name  string
		env   string
		args  []string
		code  int
		error string
	}{
		{"no output", "", []string{"build"}, 2, "-o FILE.tar or --oci DIR is required"},
		{"bad tag", "", []string{"build", "-o", "OUT", "--tag", "Not A Tag"}, 2, "--tag"},
		{"bad platform", "", []string{"build", "-o", "OUT", "--platform", "windows/amd64"}, 2, "--platform"},
		{"bad platform in a list", "", []string{"build", "--oci", "OUT", "--platform", "linux/amd64,linux/s390x"}, 2, "linux/s390x"},
		{"platform twice", "", []string{"build", "--oci", "OUT", "--platform", "linux/arm64,linux/arm64"}, 2, "given twice"},
		{"two-line version", "", []string{"build", "-o", "OUT", "--version", "1\n2"}, 2, "--version"},
		{"version with a space", "", []string{"build", "-o", "OUT", "--version", "v1 -X main.x=y"}, 2, "--version"},
		{"revision with a quote", "", []string{"build", "-o", "OUT", "--revision", "abc'"}, 2, "--revision"},
		{"unknown flag", "", []string{"build", "-o", "OUT", "--fast"}, 2, "not defined"},
		{"stray argument", "", []string{"build", "-o", "OUT", "extra"}, 2, "unexpected arguments"},
		{"bad SOURCE_DATE_EPOCH", "yesterday", []string{"build", "-o", "OUT"}, 2, "SOURCE_DATE_EPOCH"},
		{"unknown command", "", []string{"bulid"}, 2, "unknown command"},
		{"package does not build", "", []string{"build", "-o", "OUT", "--main", "./testdata/missing"}, 1, "go build"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.env)
			dir := t.TempDir()
			args := make([]string, len(tc.args))
			for i, a := range tc.args {
				args[i] = strings.ReplaceAll(a, "OUT", filepath.Join(dir, "out"))
			}
			code, _, stderr := runTool(t, "", args...)
			if code != tc.code || !strings.Contains(stderr, tc.error) {
				t.Errorf("exit %d, stderr %q; want exit %d mentioning %q", code, stderr, tc.code, tc.error)
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("left files behind: %v", left)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"build", "-h"}, {"push", "--help"}} {
		code, stdout, _ := runTool(t, "", args...)
		if code != 0 || !strings.Contains(stdout, "usage:") {
			t.Errorf("%v: exit %d, stdout %q; want 0 and the usage", args, code, stdout)
		}
	}
	if code, _, stderr := runTool(t, ""); code != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("no arguments: exit %d, stderr %q; want 2 and the usage", code, stderr)
	}
}

// An --oci directory that holds something else is refused and kept; an
// earlier layout is replaced.
func TestBuildKeepsAForeignDirectory(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runTool(t, "", "build", "--oci", dir, "--main", testMain)
	if code != 2 || !strings.Contains(stderr, "not an OCI layout") {
		t.Errorf("exit %d, stderr %q; want 2 and a refusal", code, stderr)
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "mine" {
		t.Errorf("the directory's file is gone or changed: %q %v", b, err)
	}
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
