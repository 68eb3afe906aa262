package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runArgs(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: kubectl omikuji"},
		{[]string{"nope"}, `unknown command "nope"`},
		{[]string{"audit"}, "want one Service, as svc/NAME"},
		{[]string{"audit", "deploy/x"}, `"deploy/x": want svc/NAME`},
		{[]string{"audit", "svc/x", "--draws", "0"}, "--draws must be between 1 and 1000000"},
		{[]string{"audit", "svc/x", "--alpha", "2"}, "--alpha must be between 0 and 1"},
		{[]string{"audit", "svc/x", "--html", "/no/such/dir/r.html"}, "no directory /no/such/dir"},
	} {
		code, _, stderr := runArgs(t, tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}

// A kubeconfig whose API server is a closed loopback port: exit 2, saying
// no cluster is reachable, and how to check.
func TestNoCluster(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: 'https://" + addr + "', insecure-skip-tls-verify: true}}]\n" +
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
	if err := os.WriteFile(kc, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runArgs(t, "audit", "svc/omikuji", "-n", "omikuji", "--kubeconfig", kc, "-q")
	if code != 2 || !strings.Contains(stderr, "no cluster reachable") || !strings.Contains(stderr, "kubectl get nodes") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runArgs(t, "audit", "svc/omikuji", "--kubeconfig", filepath.Join(t.TempDir(), "missing"))
	if code != 2 || !strings.Contains(stderr, "no cluster configured") {
		t.Errorf("missing kubeconfig: exit %d, stderr %q", code, stderr)
	}
}

// The plugin says which build it is the way omikuji does: version, commit
// and Go toolchain, one a line.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"version", "--version"} {
		code, stdout, _ := runArgs(t, arg)
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		if code != 0 || len(lines) != 3 || !strings.HasPrefix(lines[0], "kubectl-omikuji ") ||
			!strings.HasPrefix(lines[1], "commit ") || !strings.HasPrefix(lines[2], "go ") {
			t.Errorf("kubectl omikuji %s: exit %d, %q", arg, code, stdout)
		}
	}
}
