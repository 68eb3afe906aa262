package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

// TestServiceDocKeepsUp ties docs/service.md to the code: every flag and
// environment variable of serve and local is documented, and the fortune
// table is the catalogue's.
func TestServiceDocKeepsUp(t *testing.T) {
	doc, err := os.ReadFile("../../docs/service.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	flagLine := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	envName := regexp.MustCompile(`OMIKUJI_[A-Z_]+`)
	for _, cmd := range []string{"serve", "local"} {
		_, _, help := runCmd(cmd, "-h")
		flags := flagLine.FindAllStringSubmatch(help, -1)
		if len(flags) < 5 {
			t.Fatalf("%s -h lists %d flags:\n%s", cmd, len(flags), help)
		}
		for _, m := range flags {
			if !strings.Contains(text, "`--"+m[1]+"`") {
				t.Errorf("docs/service.md does not document %s --%s", cmd, m[1])
			}
		}
		for _, env := range envName.FindAllString(help, -1) {
			if !strings.Contains(text, "`"+env+"`") {
				t.Errorf("docs/service.md does not document %s", env)
			}
		}
	}
	total := fortune.DefaultReplicas().Total()
	for _, f := range fortune.Catalogue {
		row := regexp.MustCompile(fmt.Sprintf(`(?m)^\| `+"`%s`"+` +\| %s +\| %s +\| %s +\| %d +\| %d %% +\|$`,
			regexp.QuoteMeta(f.ID), f.Label, regexp.QuoteMeta(f.Reading), regexp.QuoteMeta(f.Gloss), f.Replicas, 100*f.Replicas/total))
		if !row.MatchString(text) {
			t.Errorf("docs/service.md's fortune table has no row matching %s", row)
		}
	}
	if !strings.Contains(text, fortune.DefaultReplicas().String()) {
		t.Error("docs/service.md does not show the default --replicas")
	}
}

// docExample is the output a doc shows after "$ " + command, up to the
// "$ echo $?" that follows, and the exit code shown under that.
func docExample(t *testing.T, doc, command string) (output string, code int) {
	t.Helper()
	_, rest, ok := strings.Cut(doc, "\n$ "+command+"\n")
	if !ok {
		t.Fatalf("no example of `%s`", command)
	}
	output, rest, ok = strings.Cut(rest, "$ echo $?\n")
	if !ok {
		t.Fatalf("the example of `%s` shows no exit code", command)
	}
	if _, err := fmt.Sscanf(rest, "%d\n", &code); err != nil {
		t.Fatalf("the example of `%s`: exit code: %v", command, err)
	}
	return output, code
}

// TestDrawExamplesAreARealRun draws as docs/draw.md's examples do, from
// the systems it starts with --seed 7, one draw at a time, and compares the
// output word for word; the README's sample must be lines of the first.
func TestDrawExamplesAreARealRun(t *testing.T) {
	raw, err := os.ReadFile("../../docs/draw.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, tc := range []struct {
		system  local.Config
		url     string // as the doc shows it
		command string
	}{
		{local.Config{Seed: 7}, "http://127.0.0.1:8080/", "omikuji draw http://127.0.0.1:8080/ -c 1"},
		{local.Config{Seed: 7, KeepAlive: true}, "http://127.0.0.1:8082/", "omikuji draw http://127.0.0.1:8082/ --keep-alive -c 1 -n 300"},
	} {
		want, wantCode := docExample(t, doc, tc.command)
		tc.system.Addr = "127.0.0.1:0"
		sys, err := local.Start(tc.system)
		if err != nil {
			t.Fatal(err)
		}
		args := strings.Fields(strings.Replace(tc.command, tc.url, sys.URL(), 1))[1:]
		code, got, stderr := runCmd(args...)
		sys.Close()
		got = strings.ReplaceAll(got, sys.URL(), tc.url)
		if code != wantCode || got != want {
			t.Errorf("`%s` against %+v: exit %d (doc: %d), stderr %q, output:\n%s\ndocs/draw.md shows:\n%s", tc.command, tc.system, code, wantCode, stderr, got, want)
		}
	}

	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := docExample(t, doc, "omikuji draw http://127.0.0.1:8080/ -c 1")
	_, sample, ok := strings.Cut(string(readme), "\n$ omikuji draw http://127.0.0.1:8080/ -c 1\n")
	if !ok {
		t.Fatal("README.md shows no `omikuji draw http://127.0.0.1:8080/ -c 1`, the command of docs/draw.md's first example")
	}
	sample, _, _ = strings.Cut(sample, "```")
	rest := first
	for _, line := range strings.Split(strings.TrimSuffix(sample, "\n"), "\n") {
		if line == "..." {
			continue
		}
		i := strings.Index(rest, line+"\n")
		if i < 0 {
			t.Errorf("README.md's sample line %q is not next in docs/draw.md's first example (a real run)", line)
			continue
		}
		rest = rest[i+len(line)+1:]
	}
}
