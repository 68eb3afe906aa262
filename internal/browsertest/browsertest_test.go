package browsertest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyTestsImportIt: no package of the module imports browsertest
// outside its tests, so the browser driver never reaches the binary; and
// the browser tests do import it, so the check is not vacuous.
func TestOnlyTestsImportIt(t *testing.T) {
	const self = "github.com/omikuji/omikuji/internal/browsertest"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports " "}}|{{join .TestImports " "}} {{join .XTestImports " "}}`, "github.com/omikuji/omikuji/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var testedBy []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, rest, _ := strings.Cut(line, "|")
		imports, testImports, _ := strings.Cut(rest, "|")
		if strings.Contains(" "+imports+" ", " "+self+" ") {
			t.Errorf("%s imports %s outside its tests", pkg, self)
		}
		if strings.Contains(" "+testImports+" ", " "+self+" ") {
			testedBy = append(testedBy, pkg)
		}
	}
	if len(testedBy) < 2 {
		t.Errorf("tests importing %s: %v; want the audit's and local mode's browser tests", self, testedBy)
	}
}
