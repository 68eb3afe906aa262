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
	// And the repository's own scripts (lint, fuzz, deps), which CI runs.
	repoScripts, err := filepath.Glob(filepath.Join(repoRoot(t), "scripts", "*.sh"))
	if err != nil || len(repoScripts) < 3 {
		t.Fatalf("want the repository's scripts/lint.sh, fuzz.sh and deps.sh, found %v (%v)", repoScripts, err)
	}
	scripts = append(scripts, repoScripts...)
	// And the benchmarks, the kind fallback and CI's entry point.
	benches, err := filepath.Glob(filepath.Join(repoRoot(t), "bench", "*.sh"))
	if err != nil || len(benches) < 3 {
		t.Fatalf("want bench/run.sh, draw.sh and audit.sh, found %v (%v)", benches, err)
	}
	scripts = append(scripts, benches...)
	scripts = append(scripts, filepath.Join(repoRoot(t), "test", "e2e", "kind.sh"), filepath.Join(repoRoot(t), ".ci", "run"))
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

// TestImagePlatformFollowsTheInstanceType checks the rule aws-up.sh uses to
// build the image for the nodes' architecture.
func TestImagePlatformFollowsTheInstanceType(t *testing.T) {
	cases := map[string]string{
		"t3.small": "linux/amd64", "t3a.medium": "linux/amd64", "m5zn.large": "linux/amd64",
		"c6a.large": "linux/amd64", "g4dn.xlarge": "linux/amd64", "i4i.large": "linux/amd64",
		"t4g.small": "linux/arm64", "m7g.large": "linux/arm64", "c7gn.xlarge": "linux/arm64",
		"r8g.medium": "linux/arm64", "x2gd.medium": "linux/arm64", "im4gn.large": "linux/arm64",
		"g5g.xlarge": "linux/arm64", "m6gd.large": "linux/arm64",
	}
	for typ, want := range cases {
		r := run(t, ".", nil, "", "bash", "-c", `source scripts/lib.sh && platform_for_instance_type "$1"`, "test", typ)
		if got := strings.TrimSpace(r.stdout); r.code != 0 || got != want {
			t.Errorf("%s: got %q (%s), want %s", typ, got, r, want)
		}
	}
}
