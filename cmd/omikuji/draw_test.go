package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
)

// fortuneServer answers draws as the default replicas behind a balancer
// would, and counts requests: it cycles through the pods in a fixed order
// (round-robin), or with a seed picks one at random each time.
func fortuneServer(t *testing.T, seed ...uint64) (*httptest.Server, *atomic.Int64) {
	var pods []string
	for _, f := range fortune.Catalogue {
		for i := range f.Replicas {
			pods = append(pods, fmt.Sprintf("%s|%s-%d", f.ID, f.ID, i))
		}
	}
	var requests atomic.Int64
	var mu sync.Mutex
	var rng *rand.Rand
	if len(seed) > 0 {
		rng = rand.New(rand.NewPCG(seed[0], 0))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(requests.Add(1)-1) % len(pods)
		if rng != nil {
			mu.Lock()
			i = rng.IntN(len(pods))
			mu.Unlock()
		}
		id, pod, _ := strings.Cut(pods[i], "|")
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"fortune": id, "pod": pod})
	}))
	t.Cleanup(srv.Close)
	return srv, &requests
}

func drawCmd(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"draw"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDrawBadInputDrawsNothing(t *testing.T) {
	srv, requests := fortuneServer(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "exactly one URL"},
		{[]string{srv.URL, srv.URL}, "exactly one URL"},
		{[]string{"127.0.0.1:8080"}, "bad URL"},
		{[]string{"ftp://127.0.0.1/"}, "http://"},
		{[]string{"http:///nohost"}, "no host"},
		{[]string{srv.URL, "-n", "0"}, "draws must be between 1 and"},
		{[]string{srv.URL, "-n", "-3"}, "draws must be between 1 and"},
		{[]string{srv.URL, "-n", "1000001"}, "draws must be between 1 and 1000000"},
		{[]string{srv.URL, "-n", "many"}, "invalid value"},
		{[]string{srv.URL, "-c", "0"}, "concurrency"},
		{[]string{srv.URL, "--timeout", "0s"}, "timeout"},
		{[]string{srv.URL, "--alpha", "0"}, "--alpha"},
		{[]string{srv.URL, "--alpha", "1.5"}, "--alpha"},
		{[]string{srv.URL, "--expect", "great-fortune=-1"}, "whole number"},
		{[]string{srv.URL, "--expect", "great-fortune=0,misfortune=0"}, "positive"},
		{[]string{srv.URL, "--expect", "lucky=3"}, "unknown fortune"},
		{[]string{srv.URL, "--expect", ""}, "empty"},
		{[]string{srv.URL, "--no-such-flag"}, "not defined"},
		{[]string{srv.URL, "-c", "100000"}, "-c: concurrency must be between 1 and 256"},
		{[]string{srv.URL, "--backend", "header:"}, "--backend \"header:\": want a header name"},
		{[]string{srv.URL, "--backend", "header:X Served"}, "for example omikuji, header:X-Served-By"},
		{[]string{srv.URL, "--backend", "regex:Name: (\\S+"}, "invalid regular expression"},
		{[]string{srv.URL, "--backend", "regex:Name: \\S+"}, "no capture group"},
		{[]string{srv.URL, "--backend", "json:"}, "dotted path"},
		{[]string{srv.URL, "--backend", "json:items[0].name"}, "non-object"},
		{[]string{srv.URL, "--backend", "json:a..b"}, "for example omikuji"},
		{[]string{srv.URL, "--backend", "pod"}, "unknown kind"},
		{[]string{srv.URL, "--backend", "omikuji:x"}, "no argument"},
		{[]string{srv.URL, "--group", "prefix:a"}, "--group \"prefix:a\": want default or regex:RE, for example regex:"},
		{[]string{srv.URL, "--group", "regex:^x$"}, "no capture group"},
		{[]string{srv.URL, "--expect", "uniform:0"}, "--expect \"uniform:0\": N in uniform:N must be a whole number from 1"},
		{[]string{srv.URL, "--expect", "uniform:1001"}, "for example uniform:3"},
		{[]string{srv.URL, "--expect", "uniform:x y"}, "for example uniform:web-7d4b9c-x2x8q,web-7d4b9c-z9k2m"},
		{[]string{srv.URL, "--backend", "header:X-Pod", "--expect", "stable=9,stable=1"}, "given twice"},
		{[]string{srv.URL, "--backend", "header:X-Pod", "--expect", "stable=0"}, "sum to 0"},
		{[]string{srv.URL, "--backend", "header:X-Pod", "--expect", "=1"}, "for example stable=9,canary=1"},
		{[]string{srv.URL, "--tests", "fit,speed"}, "--tests \"fit,speed\": \"speed\" is not a test; choose from fit,uniform,independence"},
		{[]string{srv.URL, "--tests", ""}, "is not a test"},
		{[]string{srv.URL, "-H", ": x"}, "-H \": x\": want 'Name: value'"},
		{[]string{srv.URL, "-H", "Host"}, "for example -H 'Host: shop.example'"},
		{[]string{srv.URL, "--method", "POST"}, "--method \"POST\": want GET or HEAD"},
		{[]string{srv.URL, "--method", "HEAD"}, "use --backend header:NAME"},
		{[]string{srv.URL, "--max-time", "-1s"}, "--max-time must not be negative"},
		{[]string{srv.URL, "--html", "/no/such/dir/report.html"}, "--html \"/no/such/dir/report.html\": no directory /no/such/dir"},
		{[]string{srv.URL, "--html", "/tmp"}, "is a directory; for example --html report.html"},
		{[]string{"http://user:secret@127.0.0.1:99999/"}, "bad URL \"http://***@127.0.0.1:99999/\""},
	} {
		code, stdout, stderr := drawCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) || stdout != "" {
			t.Errorf("draw %q: exit %d, stdout %q, stderr %q; want exit 2, an error containing %q, no report", tc.args, code, stdout, stderr, tc.want)
		}
	}
	if n := requests.Load(); n != 0 {
		t.Errorf("bad input made %d requests, want none", n)
	}
}

func TestDrawHelp(t *testing.T) {
	code, _, stderr := drawCmd("-h")
	if code != 0 || !strings.Contains(stderr, "usage: omikuji draw URL") || !strings.Contains(stderr, "-expect") {
		t.Errorf("draw -h: exit %d, %q", code, stderr)
	}
}

func TestDrawJSONOutput(t *testing.T) {
	srv, requests := fortuneServer(t, 42)
	// The URL may come first, as the e2e harness writes it. One draw at a
	// time keeps the seeded sequence, hence the p-values, fixed.
	code, stdout, stderr := drawCmd(srv.URL+"/", "-n", "1000", "-c", "1", "--json", "--expect", fortune.DefaultReplicas().String())
	if code != 0 {
		t.Fatalf("exit %d, stderr %q, stdout %s", code, stderr, stdout)
	}
	if stderr != "" {
		t.Errorf("stderr is not a terminal, yet got %q (a progress bar?)", stderr)
	}
	var r audit.Report
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("stdout is not one report: %v\n%s", err, stdout)
	}
	if requests.Load() != 1000 || r.Drawn != 1000 || r.Succeeded != 1000 || r.Concurrency != 1 || r.Alpha != 0.001 || !r.Pass || r.Verdict != audit.Consistent {
		t.Errorf("report %+v after %d requests", r, requests.Load())
	}
	for _, row := range r.Groups {
		f, _ := fortune.Lookup(row.ID)
		if row.Pods != f.Replicas || row.Count < 50*f.Replicas || row.Count > 150*f.Replicas {
			t.Errorf("%s: %d pods, %d draws; want %d pods and about %d draws", row.ID, row.Pods, row.Count, f.Replicas, 100*f.Replicas)
		}
	}
}

func TestDrawTextOutputAndExitCodes(t *testing.T) {
	srv, _ := fortuneServer(t)
	// The server hands out the exact odds in a fixed cycle: goodness of fit
	// passes, independence fails — exit 1 — and the table shows it all.
	code, stdout, _ := drawCmd("-n", "1000", "-c", "1", srv.URL)
	if code != 1 {
		t.Errorf("a cycling server: exit %d, want 1\n%s", code, stdout)
	}
	for _, want := range []string{"大吉", "中吉", "小吉", "凶", "10.0 %", "60.0 %", "INCONSISTENT", "round-robin", "IPVS"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("text report lacks %q:\n%s", want, stdout)
		}
	}
	// Against a wrong expectation the goodness of fit fails too.
	code, stdout, _ = drawCmd(srv.URL, "-n", "1000", "--json", "--expect", "great-fortune=1,middle-fortune=1,small-fortune=1,misfortune=1")
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	if code != 1 || r.GoodnessOfFit.Passed || r.GoodnessOfFit.PValue > 1e-10 {
		t.Errorf("wrong --expect: exit %d, goodness of fit %+v", code, r.GoodnessOfFit)
	}
}

func TestDrawUnreachableExits2(t *testing.T) {
	// A socket bound but not listening refuses connections and keeps the
	// port from other processes while the test runs.
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", sa.(*syscall.SockaddrInet4).Port)
	code, stdout, stderr := drawCmd(url, "-n", "50", "--json")
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("no JSON report: %v\n%s", err, stdout)
	}
	if code != 2 || r.Verdict != audit.Unreachable || r.Pass || r.Failures[audit.FailRefused] == 0 || !strings.Contains(stderr, "no draw") {
		t.Errorf("exit %d, stderr %q, report %+v", code, stderr, r)
	}
}

func TestDrawWritesHTML(t *testing.T) {
	srv, _ := fortuneServer(t)
	path := filepath.Join(t.TempDir(), "report.html")
	code, stdout, stderr := drawCmd(srv.URL, "-n", "500", "-c", "1", "--html", path)
	page, err := os.ReadFile(path)
	if code != 1 || err != nil || !strings.HasPrefix(string(page), "<!DOCTYPE html>") || !strings.Contains(string(page), "INCONSISTENT") || !strings.Contains(stdout, "INCONSISTENT") {
		t.Errorf("--html: exit %d, %v, stderr %q, page of %d bytes", code, err, stderr, len(page))
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the report's directory holds %d files, want just the report", len(entries))
	}
}

// Every flag of `omikuji draw -h` is documented in docs/draw.md.
func TestDrawDocListsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../docs/draw.md")
	if err != nil {
		t.Fatal(err)
	}
	_, _, help := drawCmd("-h")
	flags := regexp.MustCompile(`(?m)^  -([a-zA-Z-]+)`).FindAllStringSubmatch(help, -1)
	if len(flags) < 15 {
		t.Fatalf("draw -h lists %d flags:\n%s", len(flags), help)
	}
	for _, m := range flags {
		name := "--" + m[1]
		if len(m[1]) == 1 {
			name = "-" + m[1]
		}
		if !strings.Contains(string(doc), "| `"+name+"` |") {
			t.Errorf("docs/draw.md's flag table lacks %s", name)
		}
	}
}
