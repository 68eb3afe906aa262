package main

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"net"
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
	builtPath string
	builtErr  string
)

// builtImage is one image built at the start of the package's tests and
// shared by those that only read it.
func builtImage(t *testing.T) string {
	t.Helper()
	builtOnce.Do(func() {
		dir, err := os.MkdirTemp("", "omikuji-image-test-")
		if err != nil {
			builtErr = err.Error()
			return
		}
		path := filepath.Join(dir, "image.tar")
		code, _, stderr := runTool(t, "", "build", "-o", path, "--main", testMain)
		if code != 0 {
			builtErr = stderr
			return
		}
		builtPath = path
	})
	if builtPath == "" {
		t.Fatalf("building the image failed: %s", builtErr)
	}
	return builtPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtPath != "" {
		os.RemoveAll(filepath.Dir(builtPath))
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
	img := readImage(t, builtImage(t))
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
	if c.Labels["org.opencontainers.image.source"] != sourceURL || c.Labels["org.opencontainers.image.title"] != "omikuji" {
		t.Errorf("OCI labels = %v", c.Labels)
	}
	if cf.OS != "linux" || cf.Architecture != strings.TrimPrefix(defaultPlatform(), "linux/") {
		t.Errorf("platform %s/%s, want %s", cf.OS, cf.Architecture, defaultPlatform())
	}
	if !cf.Created.Equal(time.Unix(0, 0)) {
		t.Errorf("Created = %v, want the Unix epoch when SOURCE_DATE_EPOCH is unset", cf.Created)
	}
	if layers, _ := img.Layers(); len(layers) != 1 {
		t.Errorf("%d layers, want 1", len(layers))
	}
}

func TestImageFiles(t *testing.T) {
	files := layerFiles(t, readImage(t, builtImage(t)))
	bin, ok := files["omikuji"]
	if !ok {
		t.Fatalf("no /omikuji in the layer; files: %v", keys(files))
	}
	if h := bin.header; h.Typeflag != tar.TypeReg || h.Mode != 0o755 || h.Uid != uid || h.Gid != uid {
		t.Errorf("/omikuji: type %c mode %o owner %d:%d, want a 0755 file owned by 65532", h.Typeflag, h.Mode, h.Uid, h.Gid)
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
	assertStaticELF(t, path, elf.EM_X86_64)
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
	if elfMachine() != elf.EM_X86_64 {
		t.Skip("the image is built for linux/amd64; this machine cannot run it")
	}
	if err := exec.Command(path, "no-such-command").Run(); exitCode(err) != 2 {
		t.Errorf("omikuji no-such-command: %v, want exit status 2", err)
	}

	addr := freeAddr(t)
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

// freeAddr finds a loopback port nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
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

func TestImageSizeBudget(t *testing.T) {
	files := layerFiles(t, readImage(t, builtImage(t)))
	var total int
	for _, f := range files {
		total += len(f.contents)
	}
	t.Logf("unpacked image: %d bytes (budget %d)", total, imageBudget)
	if total > imageBudget {
		t.Errorf("unpacked image is %d bytes, over the %d budget", total, imageBudget)
	}
}

func TestBuildIsReproducible(t *testing.T) {
	first := builtImage(t)
	second := filepath.Join(t.TempDir(), "again.tar")
	if code, _, stderr := runTool(t, "", "build", "-o", second, "--main", testMain); code != 0 {
		t.Fatalf("second build: exit %d: %s", code, stderr)
	}
	a, _ := os.ReadFile(first)
	b, _ := os.ReadFile(second)
	if !bytes.Equal(a, b) {
		t.Errorf("two builds of the same source differ (%d vs %d bytes)", len(a), len(b))
	}

	// SOURCE_DATE_EPOCH moves every timestamp, and so the digest.
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dated := filepath.Join(t.TempDir(), "dated.tar")
	code, stdout, stderr := runTool(t, "", "build", "-o", dated, "--main", testMain)
	if code != 0 {
		t.Fatalf("build with SOURCE_DATE_EPOCH: exit %d: %s", code, stderr)
	}
	img := readImage(t, dated)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !cf.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("Created = %v, want SOURCE_DATE_EPOCH", cf.Created)
	}
	d1, _ := readImage(t, first).Digest()
	d2, _ := img.Digest()
	if d1 == d2 {
		t.Errorf("digest %s did not change with SOURCE_DATE_EPOCH", d1)
	}
	if !strings.Contains(stdout, d2.String()) {
		t.Errorf("build output does not print the digest %s:\n%s", d2, stdout)
	}
}

func TestBuildArm64(t *testing.T) {
	path := filepath.Join(t.TempDir(), "arm64.tar")
	if code, _, stderr := runTool(t, "", "build", "-o", path, "--main", testMain, "--platform", "linux/arm64"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	img := readImage(t, path)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Architecture != "arm64" || cf.OS != "linux" {
		t.Errorf("platform %s/%s, want linux/arm64", cf.OS, cf.Architecture)
	}
	bin := filepath.Join(t.TempDir(), "omikuji")
	if err := os.WriteFile(bin, layerFiles(t, img)["omikuji"].contents, 0o755); err != nil {
		t.Fatal(err)
	}
	assertStaticELF(t, bin, elf.EM_AARCH64)
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
		{"no output", "", []string{"build"}, 2, "-o FILE is required"},
		{"bad tag", "", []string{"build", "-o", "OUT", "--tag", "Not A Tag"}, 2, "--tag"},
		{"bad platform", "", []string{"build", "-o", "OUT", "--platform", "windows/amd64"}, 2, "--platform"},
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
				args[i] = strings.ReplaceAll(a, "OUT", filepath.Join(dir, "out.tar"))
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

func keys(m map[string]layerFile) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
