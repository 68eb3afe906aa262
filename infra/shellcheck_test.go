package infra

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScriptsAreShellcheckClean(t *testing.T) {
	bin := requireTool(t, "shellcheck", "Debian package shellcheck; make deps installs it")
	scripts, err := filepath.Glob("scripts/*.sh")
	if err != nil || len(scripts) < 4 {
		t.Fatalf("want aws-up, aws-down, lib and render-cluster-config, found %v (%v)", scripts, err)
	}
	// -x follows `source lib.sh`; every severity counts, down to style.
	r := run(t, ".", nil, "", bin, append([]string{"-x", "--severity=style"}, scripts...)...)
	if r.code != 0 {
		t.Fatalf("shellcheck:\n%s", r)
	}
}

// TestShellcheckIsLive proves the check above can fail: the same command
// flags an unquoted expansion.
func TestShellcheckIsLive(t *testing.T) {
	bin := requireTool(t, "shellcheck", "Debian package shellcheck; make deps installs it")
	bad := filepath.Join(t.TempDir(), "bad.sh")
	if err := os.WriteFile(bad, []byte("#!/usr/bin/env bash\nrm -rf $1/cache\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := run(t, ".", nil, "", bin, "-x", "--severity=style", bad)
	if r.code == 0 || !strings.Contains(r.stdout, "SC2086") {
		t.Fatalf("shellcheck should flag SC2086 in %s:\n%s", bad, r)
	}
}

func TestScriptsAreExecutable(t *testing.T) {
	for _, name := range []string{"aws-up.sh", "aws-down.sh", "render-cluster-config.sh"} {
		fi, err := os.Stat(filepath.Join("scripts", name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&0o111 == 0 {
			t.Errorf("scripts/%s is not executable (make runs it directly)", name)
		}
	}
}
