package fortune

import (
	"strings"
	"testing"
)

func TestCatalogueDefaultsAreTheDocumentedOdds(t *testing.T) {
	want := map[string]int{"great-fortune": 1, "middle-fortune": 2, "small-fortune": 6, "misfortune": 1}
	got := DefaultReplicas()
	if len(got) != len(want) {
		t.Fatalf("catalogue has %d fortunes, want %d", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("%s: %d replicas, want %d", id, got[id], n)
		}
	}
	if got.String() != "great-fortune=1,middle-fortune=2,small-fortune=6,misfortune=1" {
		t.Errorf("String() = %q", got.String())
	}
}

func TestLookup(t *testing.T) {
	f, err := Lookup("misfortune")
	if err != nil || f.Label != "凶" {
		t.Fatalf("Lookup(misfortune) = %+v, %v", f, err)
	}
	for _, bad := range []string{"", "great", "GREAT-FORTUNE"} {
		_, err := Lookup(bad)
		if err == nil || !strings.Contains(err.Error(), "great-fortune, middle-fortune, small-fortune, misfortune") {
			t.Errorf("Lookup(%q) error %v does not name the valid IDs", bad, err)
		}
	}
}

func TestParseCounts(t *testing.T) {
	c, err := ParseCounts(" great-fortune=4, misfortune=1 ")
	if err != nil {
		t.Fatal(err)
	}
	if c["great-fortune"] != 4 || c["misfortune"] != 1 || c["small-fortune"] != 0 || c.Total() != 5 {
		t.Errorf("got %v", c)
	}
	round, err := ParseCounts(DefaultReplicas().String())
	if err != nil || round.String() != DefaultReplicas().String() {
		t.Errorf("round trip: %v, %v", round, err)
	}
	for input, wantErr := range map[string]string{
		"":                                "empty",
		"great-fortune":                   "want id=n",
		"great-fortune=x":                 "whole number",
		"great-fortune=-1":                "whole number",
		"great-fortune=1,great-fortune=2": "twice",
		"lucky=1":                         "unknown fortune",
		"great-fortune=0,misfortune=0":    "positive",
		"great-fortune=1000001":           "at most",
	} {
		_, err := ParseCounts(input)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("ParseCounts(%q) = %v, want error containing %q", input, err, wantErr)
		}
	}
}

func FuzzParseCounts(f *testing.F) {
	f.Add("great-fortune=1,middle-fortune=2,small-fortune=6,misfortune=1")
	f.Add("misfortune=0,great-fortune=3")
	f.Add("=,=")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCounts(s)
		if err != nil {
			return
		}
		if c.Total() <= 0 {
			t.Fatalf("ParseCounts(%q) accepted a zero total", s)
		}
		again, err := ParseCounts(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("round trip of %q: %v, %v", c.String(), again, err)
		}
	})
}
