package infra

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestMakeHelpListsEveryAWSUpStep: `make help` shows aws-up's steps, all of
// them and in the order the script runs them.
func TestMakeHelpListsEveryAWSUpStep(t *testing.T) {
	root := repoRoot(t)
	script, err := os.ReadFile(filepath.Join(root, "infra", "scripts", "aws-up.sh"))
	if err != nil {
		t.Fatal(err)
	}
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, m := range regexp.MustCompile(`(?m)^step ([a-z]+) `).FindAllStringSubmatch(string(script), -1) {
		steps = append(steps, m[1])
	}
	help := regexp.MustCompile(`(?m)^aws-up:.*## (.*)$`).FindStringSubmatch(string(makefile))
	if len(steps) < 5 || help == nil {
		t.Fatalf("steps %q in aws-up.sh, help %q in the Makefile", steps, help)
	}
	if got := strings.Split(help[1], " → "); strings.Join(got, ",") != strings.Join(steps, ",") {
		t.Errorf("make help says aws-up does %q; aws-up.sh runs the steps %q", got, steps)
	}
}
