package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os/signal"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/local"
)

func runLocal(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("omikuji local", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: omikuji local [flags]\n\nRuns every fortune replica and, in front of them, a layer-4 balancer that picks\na replica for each new TCP connection, as kube-proxy does for a Service.\n\n")
		fs.PrintDefaults()
	}
	addr := fs.String("addr", local.DefaultAddr, "front listener address")
	replicas := fs.String("replicas", fortune.DefaultReplicas().String(), "replicas per fortune, id=n,...; fortunes left out get none")
	balancer := fs.String("balancer", local.Random, "random (kube-proxy iptables/nftables) or round-robin (IPVS's default)")
	keepAlive := fs.Bool("keep-alive", false, "let connections persist, as the original did: browser reloads then stick to one replica")
	seed := fs.Uint64("seed", 0, "seed for pod names and the random balancer; 0 picks one at random")
	logLevel := fs.String("log-level", "warn", "debug (one line per connection), info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "omikuji local: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		fmt.Fprintf(stderr, "omikuji local: --addr %q: want host:port\n", *addr)
		return 2
	}
	counts, err := fortune.ParseCounts(*replicas)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji local: --replicas: %v\n", err)
		return 2
	}
	if *balancer != local.Random && *balancer != local.RoundRobin {
		fmt.Fprintf(stderr, "omikuji local: --balancer: unknown balancer %q; want %s or %s\n", *balancer, local.Random, local.RoundRobin)
		return 2
	}
	if total := counts.Total(); total > local.MaxReplicas {
		fmt.Fprintf(stderr, "omikuji local: --replicas: %d replicas in all; at most %d in local mode\n", total, local.MaxReplicas)
		return 2
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once stopping, a second Ctrl-C kills at once instead of waiting.
	context.AfterFunc(ctx, stop)
	sys, err := local.Start(local.Config{Addr: *addr, Replicas: counts, Balancer: *balancer, KeepAlive: *keepAlive, Seed: *seed, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "omikuji local: %v\n", err)
		return 1
	}
	printOdds(stdout, sys.URL(), counts, *balancer, *keepAlive)
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
