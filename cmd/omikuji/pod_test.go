package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/podname"
	"github.com/omikuji/omikuji/internal/server"
)

// TestServeAcceptsThePodNamesDrawCounts ties serve's --pod rule to draw's:
// a replica named as serve accepts is counted by omikuji draw, and one
// named as serve refuses is a failed draw every time. (serve also refuses
// invalid UTF-8, which its JSON would turn into another name.)
func TestServeAcceptsThePodNamesDrawCounts(t *testing.T) {
	f, _ := fortune.Lookup("misfortune")
	for _, pod := range []string{
		"misfortune-7d9c5b6f4-x2x9q", "凶-ポッド", "a b", strings.Repeat("p", podname.Max),
		"a\nb", "a\x1b[2J", "a\u202eb", strings.Repeat("p", podname.Max+1),
	} {
		ctx, cancel := context.WithCancel(context.Background())
		ln, err := server.Listen(ctx, "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- server.New(server.Config{Fortune: f, Pod: pod}).Run(ctx, ln, nil) }()
		_, stdout, stderr := drawCmd("http://"+ln.Addr().String()+"/", "-n", "5", "-c", "1", "--json")
		cancel()
		<-done
		var r audit.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("pod %q: no report: %v, stderr %q", pod, err, stderr)
		}
		accepted := podname.Check(pod) == nil
		if counted := r.Succeeded == 5; counted != accepted {
			t.Errorf("pod %q: serve accepts it: %v; draw counted %d of 5 draws", pod, accepted, r.Succeeded)
		}
	}
}
