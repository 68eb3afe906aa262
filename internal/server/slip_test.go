package server

import (
	"bytes"
	"html/template"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

// TestSlipMatchesHTMLTemplate renders the slip with html/template, whose
// contextual escaping is the reference, and wants renderHTML's bytes.
func TestSlipMatchesHTMLTemplate(t *testing.T) {
	slip := template.Must(template.New("slip").Parse(slipHTML))
	type view struct {
		fortune.Fortune
		Pod string
		Ill bool
	}
	pods := []string{"great-fortune-7d9c5b6f4-x2x9q", `<b>"pod"</b>`, "a&b'c+d>e\x00f", "</code><script>alert(1)</script>", "\xff\xfe invalid", "ポッド"}
	for _, f := range fortune.Catalogue {
		for _, pod := range pods {
			var want bytes.Buffer
			if err := slip.Execute(&want, view{f, pod, f.ID == "misfortune"}); err != nil {
				t.Fatal(err)
			}
			got := renderHTML(Config{Fortune: f, Pod: pod})
			if !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s, pod %q: renderHTML differs from html/template:\n%s\nwant\n%s", f.ID, pod, got, want.Bytes())
			}
			if strings.Contains(string(got), "{{") {
				t.Errorf("%s: a placeholder is left:\n%s", f.ID, got)
			}
		}
	}
}
