package audit

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/fortune"
)

// docs/draw.md documents the --json schema, the failure kinds, the verdicts
// and the default expectation; this keeps it in step with the code.
func TestDocsMatchTheCode(t *testing.T) {
	raw, err := os.ReadFile("../../docs/draw.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	want := []string{fortune.DefaultReplicas().String(), FailRefused, FailTimeout, FailReset, FailDNS, FailBadBody, FailUnknown, FailTLS, FailNoBackend, FailTooMany, FailOther, "http_status_",
		Consistent, Inconclusive, Inconsistent, Unreachable}
	for _, typ := range []reflect.Type{reflect.TypeFor[Report](), reflect.TypeFor[Row](), reflect.TypeFor[Test]()} {
		for field := range typ.Fields() {
			name, _, _ := strings.Cut(field.Tag.Get("json"), ",")
			want = append(want, name)
		}
	}
	for _, w := range want {
		if !strings.Contains(doc, "`"+w) && !strings.Contains(doc, "."+w+"`") {
			t.Errorf("docs/draw.md does not mention `%s`", w)
		}
	}
}
