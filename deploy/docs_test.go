package deploy

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

const oddsHeader = "| Fortune | ID | Replicas | Odds |"

// TestDocsOddsTableIsTheCatalogue ties the odds table in docs/kubernetes.md
// to internal/fortune: same fortunes, same order, same replicas and odds.
func TestDocsOddsTableIsTheCatalogue(t *testing.T) {
	doc, err := os.ReadFile("../docs/kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	rows, err := oddsTable(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	var want [][]string
	total := fortune.DefaultReplicas().Total()
	for _, f := range fortune.Catalogue {
		want = append(want, []string{f.Label, "`" + f.ID + "`", fmt.Sprint(f.Replicas), fmt.Sprintf("%.3g %%", 100*float64(f.Replicas)/float64(total))})
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Errorf("docs/kubernetes.md odds table\n got %q\nwant %q (from internal/fortune)", rows, want)
	}
}

// oddsTable returns the cells of the table under oddsHeader, without the
// header and separator rows.
func oddsTable(doc string) ([][]string, error) {
	_, table, ok := strings.Cut(doc, "\n"+oddsHeader+"\n")
	if !ok {
		return nil, fmt.Errorf("no table headed %q", oddsHeader)
	}
	var rows [][]string
	for i, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if i == 0 {
			continue // |---|---|
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows, nil
}

func TestOddsTableParser(t *testing.T) {
	rows, err := oddsTable("x\n" + oddsHeader + "\n|---|---|---|---|\n| 凶 | `misfortune` | 1 | 10 % |\n\nafter | x |\n")
	if err != nil || fmt.Sprint(rows) != "[[凶 `misfortune` 1 10 %]]" {
		t.Errorf("got %q, %v", rows, err)
	}
	if _, err := oddsTable("no table"); err == nil {
		t.Error("a document without the table passed")
	}
}
