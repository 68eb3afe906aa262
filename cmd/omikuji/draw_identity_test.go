package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
)

// randomFront is a loopback L4 balancer: each accepted connection is spliced
// to one of backends, chosen by a seeded generator, as a Service's random
// pick would.
func randomFront(t *testing.T, backends []string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	rng := rand.New(rand.NewPCG(11, 12))
	wg.Go(func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			backend := backends[rng.IntN(len(backends))]
			wg.Go(func() {
				defer client.Close()
				server, err := net.DialTimeout("tcp", backend, 5*time.Second)
				if err != nil {
					return
				}
				defer server.Close()
				done := make(chan struct{})
				go func() {
					io.Copy(server, client)
					server.(*net.TCPConn).CloseWrite()
					close(done)
				}()
				io.Copy(client, server)
				client.(*net.TCPConn).CloseWrite()
				<-done
			})
		}
	})
	return "http://" + ln.Addr().String() + "/"
}

// startServe runs `omikuji serve` in the test process until the test ends.
func startServe(t *testing.T, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, append([]string{"serve", "--metrics-addr", "", "--drain", "0s", "--shutdown-timeout", "1s"}, args...), io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatalf("nothing listens on %s", addr)
}

// Two replicas that share a pod name but serve different fortunes, behind a
// random L4 front: each answer counts in the fortune it names, and every
// output says in words that the names are not unique.
func TestDrawCountsEachAnswerAsItSaysAndReportsSharedNames(t *testing.T) {
	ports := freePorts(t, 2)
	var backends []string
	for i, id := range []string{"great-fortune", "misfortune"} {
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		startServe(t, "--fortune", id, "--pod", "same", "--addr", addr)
		waitListening(t, addr)
		backends = append(backends, addr)
	}
	front := randomFront(t, backends)
	flags := []string{front, "-n", "400", "-c", "4", "--expect", "great-fortune=1,misfortune=1"}

	code, stdout, stderr := drawCmd(append(flags, "--json")...)
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("exit %d, stderr %q: %v\n%s", code, stderr, err, stdout)
	}
	counts := map[string]int{}
	for _, row := range r.Groups {
		counts[row.ID] = row.Count
	}
	if r.Succeeded != 400 || counts["great-fortune"] < 120 || counts["misfortune"] < 120 || counts["great-fortune"]+counts["misfortune"] != 400 {
		t.Errorf("each answer must count in the fortune it names: %v of %d", counts, r.Succeeded)
	}
	want := "Backend `same` answered as great-fortune and misfortune: the backend names are not unique, e.g. several replicas sharing a host name; give each its own `--pod`."
	if len(r.SharedNames) != 1 || r.SharedNames[0].Name != "same" || strings.Join(r.SharedNames[0].Groups, ",") != "great-fortune,misfortune" || !strings.Contains(r.Summary, want) {
		t.Errorf("--json: shared_names %+v, summary %q", r.SharedNames, r.Summary)
	}
	if code != 0 {
		t.Errorf("a fair split over the two fortunes: exit %d, want 0 (%s)", code, r.Summary)
	}

	page := filepath.Join(t.TempDir(), "report.html")
	_, stdout, _ = drawCmd(append(flags, "--html", page)...)
	if text := strings.Join(strings.Fields(stdout), " "); !strings.Contains(text, want) {
		t.Errorf("the text report does not say it:\n%s", stdout)
	}
	html, err := os.ReadFile(page)
	if err != nil || !strings.Contains(string(html), "Backend `same` answered as great-fortune and misfortune") {
		t.Errorf("the HTML report does not say it (%v)", err)
	}
}
