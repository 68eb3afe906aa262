package audit

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Before its first full window, the live view says it is filling it ("99 of
// 150"), not that a window of 99 was judged.
func TestWatchSaysItIsFillingTheFirstWindow(t *testing.T) {
	srv := randomServer(t, []string{"web-1", "web-2"}, func(w http.ResponseWriter, _ *http.Request, name string) {
		w.Header().Set("X-Pod", name)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var first Report
	w := Watch{
		Audit:  Audit{Options: Options{URL: srv.URL, Concurrency: 1, Timeout: 5 * time.Second, Rate: 100, Backend: mustBackend(t, "header:X-Pod")}, Alpha: 0.001},
		Window: 150, Every: 300 * time.Millisecond,
		Live: func(r Report, _ []Change) {
			if first.Requested == 0 {
				first = r
			}
			cancel()
		},
	}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	w.Run(ctx)
	if first.Drawn == 0 || first.Drawn >= 150 || first.Requested != 150 {
		t.Fatalf("first live view: %d draws of a window of %d; want between 1 and 149 of 150", first.Drawn, first.Requested)
	}
	var b strings.Builder
	if err := WriteLive(&b, first, nil, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("filling the first window (%d of 150)", first.Drawn); !strings.Contains(b.String(), want) || strings.Contains(b.String(), "last ") {
		t.Errorf("the live view does not say %q:\n%s", want, b.String())
	}
}
