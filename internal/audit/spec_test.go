package audit

import (
	"net/http"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/podname"
)

func TestParseSpecsRoundTrip(t *testing.T) {
	for _, spec := range []string{"omikuji", "header:X-Served-By", "json:hostname", "json:data.pod", `regex:Name: (\S+)`} {
		b, err := ParseBackend(spec)
		if err != nil || b.String() != spec {
			t.Errorf("ParseBackend(%q) = %v, %v", spec, b, err)
		}
	}
	if b, _ := ParseBackend("header:x-served-by"); b.Header != "X-Served-By" {
		t.Errorf("header names are canonical: %q", b.Header)
	}
	e, err := ParseExpect("stable=9, canary=1", BackendSpec{Kind: KindHeader}, GroupSpec{})
	if err != nil || e.String() != "stable=9,canary=1" || e.Kind != ExpectWeights {
		t.Errorf("weights: %+v %v", e, err)
	}
	if e, _ := ParseExpect("", BackendSpec{Kind: KindOmikuji}, GroupSpec{}); e.Kind != ExpectCatalogue || e.String() != "great-fortune=1,middle-fortune=2,small-fortune=6,misfortune=1" {
		t.Errorf("omikuji's default: %+v", e)
	}
	if e, _ := ParseExpect("", BackendSpec{Kind: KindJSON}, GroupSpec{}); e.Kind != ExpectUniform {
		t.Errorf("any other kind's default: %+v", e)
	}
	if h, err := ParseHeader("host:  shop.example "); err != nil || h != (Header{"Host", "shop.example"}) {
		t.Errorf("ParseHeader: %+v %v", h, err)
	}
	if tests, err := ParseTests("fit, fit,independence"); err != nil || strings.Join(tests, ",") != "fit,independence" {
		t.Errorf("ParseTests: %v %v", tests, err)
	}
	g, _ := ParseGroup(`regex:^(.+)-[a-z0-9]+-[a-z0-9]+$`)
	if got := g.Of("web-7d9f8c6b4-x2x9q", ""); got != "web" {
		t.Errorf("group of a Deployment's pod: %q", got)
	}
	if got := g.Of("standalone", ""); got != "standalone" {
		t.Errorf("a name the regexp does not match is its own group: %q", got)
	}
}

// FuzzParseSpecs: every flag parser either accepts and round-trips, or
// refuses with an error that names its flag and shows an example.
func FuzzParseSpecs(f *testing.F) {
	for _, s := range []string{"omikuji", "header:X-Pod", "json:a.b", `regex:Name: (\S+)`, "regex:(", "json:a[0]", "uniform:3", "stable=9,canary=1", "Host: x", "fit,uniform"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if b, err := ParseBackend(s); err != nil {
			if !strings.Contains(err.Error(), "--backend") || !strings.Contains(err.Error(), "for example") {
				t.Fatalf("ParseBackend(%q): %v", s, err)
			}
		} else if again, err := ParseBackend(b.String()); err != nil || again.String() != b.String() {
			t.Fatalf("ParseBackend(%q) = %q, again %v", s, b, err)
		}
		if _, err := ParseGroup(s); err != nil && (!strings.Contains(err.Error(), "--group") || !strings.Contains(err.Error(), "example")) {
			t.Fatalf("ParseGroup(%q): %v", s, err)
		}
		for _, kind := range []string{KindOmikuji, KindHeader} {
			e, err := ParseExpect(s, BackendSpec{Kind: kind}, GroupSpec{})
			if err != nil {
				if !strings.Contains(err.Error(), "--expect") {
					t.Fatalf("ParseExpect(%q): %v", s, err)
				}
				continue
			}
			if again, err := ParseExpect(e.String(), BackendSpec{Kind: kind}, GroupSpec{}); err != nil || again.String() != e.String() {
				t.Fatalf("ParseExpect(%q) = %q, again %v", s, e, err)
			}
		}
		if h, err := ParseHeader(s); err != nil {
			if !strings.Contains(err.Error(), "-H") {
				t.Fatalf("ParseHeader(%q): %v", s, err)
			}
		} else if !validToken(h.Name) || strings.ContainsAny(h.Value, "\r\n") {
			t.Fatalf("ParseHeader(%q) = %+v", s, h)
		}
		if _, err := ParseTests(s); err != nil && !strings.Contains(err.Error(), "--tests") {
			t.Fatalf("ParseTests(%q): %v", s, err)
		}
	})
}

// FuzzIdentify: whatever an answer holds, a backend is named within the
// limits (printable, at most 253 bytes) or the draw fails with a bounded,
// printable message.
func FuzzIdentify(f *testing.F) {
	f.Add("X-Pod", "a", []byte(`{"fortune":"misfortune","pod":"m-1","hostname":"h"}`))
	f.Add("X-Pod", "", []byte("Name: web-1\n"))
	f.Add("X-Pod", "\x1b", []byte(`{"hostname":{"x":1}}`))
	specs := []BackendSpec{{Kind: KindOmikuji}, {Kind: KindHeader, Header: "X-Pod"}, {Kind: KindJSON, Path: []string{"hostname"}}}
	re, _ := ParseBackend(`regex:Name: (\S+)`)
	specs = append(specs, re)
	f.Fuzz(func(t *testing.T, name, value string, body []byte) {
		h := http.Header{}
		h.Set(name, value)
		for _, spec := range specs {
			out := identify(spec, h, body)
			switch {
			case out.Failure == "" && (out.Backend == "" || len(out.Backend) > maxPodName || !podname.Printable(out.Backend)):
				t.Fatalf("%s: backend %q", spec, out.Backend)
			case out.Failure != "" && (out.Err == "" || len(out.Err) > maxExample+len("…")+64 || !podname.Printable(out.Err)):
				t.Fatalf("%s: failure %q", spec, out.Err)
			}
		}
	})
}
