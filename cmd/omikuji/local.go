package main

import (
	"context"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

const localUsage = `usage: omikuji local [flags]

Runs every fortune replica and, in front of them, a layer-4 balancer that picks
a replica for each new TCP connection, as kube-proxy does for a Service. Flags
that serve also has can be set by the same environment variables.

`

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("local", localUsage, stderr)
	var env envReader
	addr := fs.String("addr", env.String("OMIKUJI_ADDR", local.DefaultAddr), "front listener address (env OMIKUJI_ADDR)")
	metricsAddr := fs.String("metrics-addr", env.String("OMIKUJI_METRICS_ADDR", ""), "listen address of every replica's /metrics, labelled by pod; unless set, 127.0.0.1 and the --addr port + 1000 (127.0.0.1:9080); empty serves none (env OMIKUJI_METRICS_ADDR)")
	replicas := fs.String("replicas", fortune.DefaultReplicas().String(), "replicas per fortune, id=n,...; fortunes left out get none")
	balancer := fs.String("balancer", local.Random, "random (kube-proxy iptables/nftables) or round-robin (IPVS's default)")
	keepAlive := fs.Bool("keep-alive", env.Bool("OMIKUJI_KEEP_ALIVE", false), "let connections persist: browser reloads then stick to one replica (env OMIKUJI_KEEP_ALIVE)")
	seed := fs.Uint64("seed", 0, "seed for pod names and the random balancer; 0 picks one at random")
	logLevel := fs.String("log-level", env.String("OMIKUJI_LOG_LEVEL", "warn"), "debug (one line per connection), info, warn or error (env OMIKUJI_LOG_LEVEL)")
	if code, ok := parseFlags(fs, args, &env); !ok {
		return code
	}
	counts, err := fortune.ParseCounts(*replicas)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji local: --replicas: %v\n", err)
		return 2
	}
	cfg := local.Config{Addr: *addr, MetricsAddr: *metricsAddr, Replicas: counts, Balancer: *balancer, KeepAlive: *keepAlive, Seed: *seed}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 2
	}
	// Metrics stay on loopback unless asked: they are internal.
	if !given(fs, "metrics-addr", "OMIKUJI_METRICS_ADDR") {
		cfg.MetricsAddr, err = defaultMetricsAddr("127.0.0.1", *addr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 2
	}
	if cfg.Logger, err = newLogger(stderr, *logLevel); err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once stopping, a second Ctrl-C kills at once instead of waiting.
	context.AfterFunc(ctx, stop)
	sys, err := local.Start(cfg)
	if err != nil {
		if samePort(err, cfg.MetricsAddr) {
			err = inUse(err, metricsInUse)
		} else {
			err = inUse(err, addrInUse)
		}
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 1
	}
	printOdds(stdout, sys.URL(), counts, *balancer, *keepAlive)
	if u := sys.MetricsURL(); u != "" {
		fmt.Fprintf(stdout, "metrics of every replica: %s\n", u)
	}
	<-ctx.Done()
	if err := sys.Close(); err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "stopped")
	return 0
}

// printOdds prints the URL and one row per fortune. Columns are padded by
// display width: a kanji takes two terminal cells.
func printOdds(w io.Writer, url string, counts fortune.Counts, balancer string, keepAlive bool) {
	how := "a random replica per connection, like kube-proxy (iptables/nftables)"
	if balancer == local.RoundRobin {
		how = "replicas in turn, like IPVS round-robin: exact shares, but no lot is drawn"
	}
	fmt.Fprintf(w, "omikuji local: %d replicas; the balancer picks %s\n", counts.Total(), how)
	if keepAlive {
		fmt.Fprintln(w, "keep-alive on: a browser reusing its connection keeps drawing from the same replica")
	}
	fmt.Fprintf(w, "\n  %s\n\n", url)
	row := func(id, label, replicas, odds string) {
		fmt.Fprintf(w, "  %s  %s  %8s  %6s\n", pad(id, 14), pad(label, 5), replicas, odds)
	}
	row("fortune", "kanji", "replicas", "odds")
	total := counts.Total()
	for _, f := range fortune.Catalogue {
		n := counts[f.ID]
		row(f.ID, f.Label, fmt.Sprint(n), fmt.Sprintf("%.1f%%", 100*float64(n)/float64(total)))
	}
	row("total", "", fmt.Sprint(total), "100.0%")
	fmt.Fprintln(w, "\nCtrl-C stops.")
}

func pad(s string, width int) string {
	w := 0
	for _, r := range s {
		if utf8.RuneLen(r) >= 3 { // CJK: two cells
			w += 2
		} else {
			w++
		}
	}
	if w >= width {
		return s
	}
	return s + strings.Repeat(" ", width-w)
}
