package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
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
