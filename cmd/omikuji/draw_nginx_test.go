package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omikuji/omikuji/internal/audit"
)

// These tests audit balancers nobody here wrote: nginx from Debian
// (nginx-light and libnginx-mod-stream, installed by scripts/deps.sh),
// started with its own configuration on 127.0.0.1. Its backends name
// themselves three ways — a header (add_header), a line of text
// (return 200 "Name: …") and JSON — for header:, regex: and json:.
//
// nginx's random balancer cannot be seeded, so its verdicts carry a false
// failure probability. Passing checks use --alpha 1e-6 on three tests: a
// fair balancer fails one of them with probability below 3·10⁻⁶. Failing
// checks are deterministic (round-robin, hash, smooth weighted round-robin
// at -c 1 give the same sequence every run) and their p-values are far
// below the default --alpha 0.001.

const (
	nginxBinary = "/usr/sbin/nginx"
	streamMod   = "/usr/lib/nginx/modules/ngx_stream_module.so"
)

// nginxPorts are the ports one nginx listens on.
type nginxPorts struct {
	header, text, json []int // three backends of each kind
	stable, canary     int   // the canary split's backends (header)
	random, rr, hash   int   // stream balancers over the header, text and json backends
	weighted           int   // stream random with weights 3:1:0 over the header backends
	split              int   // http upstream, stable weight 9, canary weight 1
}

// freePorts reserves n distinct free ports on 127.0.0.1 (they are released
// just before nginx binds them).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func startNginx(t *testing.T) nginxPorts {
	t.Helper()
	for _, f := range []string{nginxBinary, streamMod} {
		if _, err := os.Stat(f); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI must have nginx with its stream module (scripts/deps.sh): %v", err)
			}
			t.Skipf("no %s: run scripts/deps.sh", f)
		}
	}
	p := freePorts(t, 16)
	ports := nginxPorts{header: p[0:3], text: p[3:6], json: p[6:9], stable: p[9], canary: p[10],
		random: p[11], rr: p[12], hash: p[13], weighted: p[14], split: p[15]}
	var servers, upstreams strings.Builder
	for _, port := range ports.header {
		fmt.Fprintf(&servers, "    server { listen 127.0.0.1:%d; location / { add_header X-Served-By backend-%d always; return 200 \"ok\\n\"; } }\n", port, port)
	}
	for _, port := range ports.text {
		fmt.Fprintf(&servers, "    server { listen 127.0.0.1:%d; default_type text/plain; location / { return 200 \"Hostname: nginx\\nName: backend-%d\\n\"; } }\n", port, port)
	}
	for _, port := range ports.json {
		fmt.Fprintf(&servers, "    server { listen 127.0.0.1:%d; default_type application/json; location / { return 200 '{\"hostname\":\"backend-%d\",\"version\":\"1\"}'; } }\n", port, port)
	}
	for name, port := range map[string]int{"stable": ports.stable, "canary": ports.canary} {
		fmt.Fprintf(&servers, "    server { listen 127.0.0.1:%d; location / { add_header X-Served-By %s-%d always; return 200 \"ok\\n\"; } }\n", port, name, port)
	}
	upstream := func(name, policy string, backends []int, weights ...int) {
		fmt.Fprintf(&upstreams, "    upstream %s {\n", name)
		if policy != "" {
			fmt.Fprintf(&upstreams, "        %s;\n", policy)
		}
		for i, port := range backends {
			w := ""
			if len(weights) > 0 {
				w = fmt.Sprintf(" weight=%d", weights[i])
			}
			fmt.Fprintf(&upstreams, "        server 127.0.0.1:%d%s;\n", port, w)
		}
		fmt.Fprintf(&upstreams, "    }\n")
	}
	upstream("random", "random", ports.header)
	upstream("rr", "", ports.text)
	upstream("hash", "hash $remote_addr", ports.json)
	upstream("weighted", "random", ports.header[:2], 3, 1)
	dir := t.TempDir()
	conf := fmt.Sprintf(`load_module %s;
master_process off;
daemon off;
worker_processes 1;
error_log @DIR@/error.log warn;
pid @DIR@/nginx.pid;
events { worker_connections 1024; }
stream {
%s    server { listen 127.0.0.1:%d; proxy_pass random; }
    server { listen 127.0.0.1:%d; proxy_pass rr; }
    server { listen 127.0.0.1:%d; proxy_pass hash; }
    server { listen 127.0.0.1:%d; proxy_pass weighted; }
}
http {
    access_log off;
    client_body_temp_path @DIR@/body;
    proxy_temp_path @DIR@/proxy;
    fastcgi_temp_path @DIR@/fastcgi;
    uwsgi_temp_path @DIR@/uwsgi;
    scgi_temp_path @DIR@/scgi;
%s    upstream split { server 127.0.0.1:%d weight=9; server 127.0.0.1:%d weight=1; }
    server { listen 127.0.0.1:%d; location / { proxy_pass http://split; } }
}
`, streamMod, upstreams.String(), ports.random, ports.rr, ports.hash, ports.weighted,
		servers.String(), ports.stable, ports.canary, ports.split)
	conf = strings.ReplaceAll(conf, "@DIR@", dir)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxBinary, "-p", dir, "-c", path, "-e", filepath.Join(dir, "error.log"))
	out, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for _, port := range []int{ports.random, ports.rr, ports.hash, ports.weighted, ports.split} {
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
				stderr, _ := os.ReadFile(filepath.Join(dir, "stderr"))
				t.Fatalf("nginx did not listen on %d: %v\n%s\n%s\n%s", port, err, logs, stderr, conf)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return ports
}

// auditNginx runs `omikuji draw --json` against port and decodes the report.
func auditNginx(t *testing.T, port int, args ...string) (audit.Report, int, string) {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	code, stdout, stderr := drawCmd(append([]string{url, "--json", "-c", "1"}, args...)...)
	var r audit.Report
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("draw %v: exit %d, %v\n%s\n%s", args, code, err, stdout, stderr)
	}
	if r.Failed != 0 {
		t.Fatalf("draw %v: %d failed draws: %v %v", args, r.Failed, r.Failures, r.FailureExamples)
	}
	t.Logf("%s %v: exit %d, %s; fit p = %.3g, uniform p = %.3g, independence p = %.3g; counts %v",
		url, args, code, r.Verdict, r.GoodnessOfFit.PValue, r.Uniformity.PValue, r.Independence.PValue, r.Backends)
	return r, code, strings.Join(r.LikelyCauses, "\n")
}

func TestNginxBalancers(t *testing.T) {
	ports := startNginx(t)

	t.Run("stream random passes", func(t *testing.T) {
		r, code, causes := auditNginx(t, ports.random, "-n", "3000", "--backend", "header:X-Served-By", "--expect", "uniform:3", "--alpha", "1e-6")
		if code != 0 || r.Verdict != audit.Consistent || r.BackendsSeen != 3 || !r.GoodnessOfFit.Applicable || !r.Independence.Applicable || causes != "" {
			t.Errorf("random: exit %d, %s — %s\n%s", code, r.Verdict, r.Summary, causes)
		}
	})
	t.Run("stream round-robin fails independence", func(t *testing.T) {
		r, code, causes := auditNginx(t, ports.rr, "-n", "600", "--backend", `regex:Name: (\S+)`, "--expect", "uniform:3")
		if code != 1 || r.Independence.Passed || r.Independence.PValue > 1e-50 || !r.GoodnessOfFit.Passed || r.Repeats != 0 ||
			!strings.Contains(causes, "round-robin cycling") {
			t.Errorf("round-robin: exit %d, %s — %s\n%s", code, r.Verdict, r.Summary, causes)
		}
	})
	t.Run("stream hash fails uniform:N", func(t *testing.T) {
		r, code, causes := auditNginx(t, ports.hash, "-n", "300", "--backend", "json:hostname", "--expect", "uniform:3")
		if code != 1 || r.BackendsSeen != 1 || r.Uniformity.Passed || r.Uniformity.PValue > 1e-100 ||
			!strings.Contains(causes, "Only 1 of 3 backends answered") || !strings.Contains(causes, "a node-local traffic policy") || !strings.Contains(causes, "hash $remote_addr") {
			t.Errorf("hash: exit %d, %s — %s; %+v\n%s", code, r.Verdict, r.Summary, r.Uniformity, causes)
		}
	})
	t.Run("stream weighted random passes against its weights", func(t *testing.T) {
		expect := fmt.Sprintf("backend-%d=3,backend-%d=1", ports.header[0], ports.header[1])
		r, code, causes := auditNginx(t, ports.weighted, "-n", "3000", "--backend", "header:X-Served-By", "--expect", expect, "--alpha", "1e-6")
		if code != 0 || r.Verdict != audit.Consistent || r.BackendsSeen != 2 || !r.GoodnessOfFit.Applicable || causes != "" {
			t.Errorf("weighted random: exit %d, %s — %s\n%s", code, r.Verdict, r.Summary, causes)
		}
		// The same weights read as uniform fail: 3:1 is far from 1:1.
		r, code, _ = auditNginx(t, ports.weighted, "-n", "3000", "--backend", "header:X-Served-By", "--tests", "fit")
		if code != 1 || r.GoodnessOfFit.PValue > 1e-50 {
			t.Errorf("weighted random against uniform: exit %d, %+v", code, r.GoodnessOfFit)
		}
	})
	t.Run("http upstream 9:1 canary", func(t *testing.T) {
		split := []string{"-n", "3000", "--backend", "header:X-Served-By", "--group", "regex:^([a-z]+)-"}
		r, code, _ := auditNginx(t, ports.split, append(split, "--tests", "fit", "--expect", "stable=9,canary=1")...)
		if code != 0 || r.Verdict != audit.Consistent || r.Groups[0].Count != 2700 || r.Groups[1].Count != 300 {
			t.Errorf("9:1 against 9:1: exit %d, %s — %s; %+v", code, r.Verdict, r.Summary, r.Groups)
		}
		r, code, _ = auditNginx(t, ports.split, append(split, "--tests", "fit", "--expect", "stable=1,canary=1")...)
		if code != 1 || r.GoodnessOfFit.Passed {
			t.Errorf("9:1 against 1:1: exit %d, %s", code, r.Summary)
		}
		r, code, causes := auditNginx(t, ports.split, append(split, "--expect", "stable=9,canary=1")...)
		if code != 1 || r.Independence.Passed || r.Independence.PValue > 1e-6 || !strings.Contains(causes, "deterministic weighted cycle") {
			t.Errorf("9:1, all tests: exit %d, %s — %s\n%s", code, r.Verdict, r.Summary, causes)
		}
	})
}
