package main

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `omikuji version` and `--version` print the same three
// facts; anything after version is a usage error.
func TestVersion(t *testing.T) {
	want := regexp.MustCompile(`^omikuji \S+\ncommit  \S+( \(modified\))?\ngo      ` + regexp.QuoteMeta(runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) + `\n$`)
	var first string
	for _, arg := range []string{"version", "--version", "-version"} {
		code, stdout, stderr := runCmd(arg)
		if code != 0 || stderr != "" || !want.MatchString(stdout) {
			t.Errorf("omikuji %s: exit %d, stderr %q, stdout %q; want %s", arg, code, stderr, stdout, want)
		}
		if first == "" {
			first = stdout
		} else if stdout != first {
			t.Errorf("omikuji %s printed %q, version printed %q", arg, stdout, first)
		}
	}
	if code, _, stderr := runCmd("version", "--short"); code != 2 || !strings.Contains(stderr, `unexpected argument "--short"`) {
		t.Errorf("version --short: exit %d, stderr %q", code, stderr)
	}
	if code, stdout, _ := runCmd("version", "-h"); code != 0 || !strings.Contains(stdout, "usage: omikuji version") {
		t.Errorf("version -h: exit %d, stdout %q", code, stdout)
	}
	if code, stdout, _ := runCmd("help"); code != 0 || !strings.Contains(stdout, "version") || !strings.Contains(stdout, "completion") {
		t.Errorf("help lists no version or completion: %q", stdout)
	}
}

// TestVersionOfRealBuilds builds the binary the ways the docs and the
// Makefile do and runs it: the linker's stamps (make build VERSION=…,
// tools/image, the Dockerfile), and the go command's own record of the git
// commit (go install ./cmd/... in a clone).
func TestVersionOfRealBuilds(t *testing.T) {
	goTool := filepath.Join(build.Default.GOROOT, "bin", "go") // the toolchain running this test
	build := func(t *testing.T, args ...string) string {
		t.Helper()
		bin := filepath.Join(t.TempDir(), "omikuji")
		cmd := exec.Command(goTool, append(append([]string{"build", "-o", bin}, args...), ".")...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %q: %v\n%s", args, err, out)
		}
		out, err := exec.Command(bin, "--version").Output()
		if err != nil {
			t.Fatalf("omikuji --version: %v", err)
		}
		return string(out)
	}
	t.Run("stamped", func(t *testing.T) {
		got := build(t, "-buildvcs=false", "-ldflags=-X github.com/omikuji/omikuji/internal/version.version=v1.2.3 -X github.com/omikuji/omikuji/internal/version.commit=0123456789abcdef0123456789abcdef01234567")
		if !strings.HasPrefix(got, "omikuji v1.2.3\ncommit  0123456789abcdef0123456789abcdef01234567\n") {
			t.Errorf("stamped build prints:\n%s", got)
		}
	})
	t.Run("from git", func(t *testing.T) {
		// The go command looks for a .git directory: a git worktree (.git
		// is a file there) or a source tarball gets no VCS stamp.
		head, err := exec.Command("git", "rev-parse", "HEAD").Output()
		if fi, serr := os.Stat("../../.git"); err != nil || serr != nil || !fi.IsDir() {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI runs in a git clone: git rev-parse HEAD: %v; ../../.git: %v", err, serr)
			}
			t.Skipf("not a git clone (a .git directory) with git installed: %v %v", err, serr)
		}
		got := build(t, "-buildvcs=true")
		commit := strings.TrimSpace(string(head))
		// The go command makes a pseudo-version from the commit, v0.0.0-<time>-<12 hex>.
		want := regexp.MustCompile(`^omikuji v\S+-` + commit[:12] + `(\+dirty)?\ncommit  ` + commit + `( \(modified\))?\n`)
		if !want.MatchString(got) {
			t.Errorf("build in the clone prints:\n%s\nwant to match %s", got, want)
		}
	})
}
