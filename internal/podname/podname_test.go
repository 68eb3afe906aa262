package podname

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for name, ok := range map[string]bool{
		"great-fortune-7d9c5b6f4-x2x9q": true,
		"大吉-pod":                        true,
		"a b":                           true,
		strings.Repeat("a", Max):        true,
		"":                              false,
		strings.Repeat("a", Max+1):      false,
		"a\nb":                          false,
		"a\tb":                          false,
		"a\x00":                         false,
		"\xff":                          false,
		"a\u202eb":                      false, // a bidirectional override
	} {
		if err := Check(name); (err == nil) != ok {
			t.Errorf("Check(%q) = %v, want ok %v", name, err, ok)
		}
	}
}
