package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/podname"
	"github.com/omikuji/omikuji/internal/rlimit"
	"github.com/omikuji/omikuji/internal/server"
)

const serveUsage = `usage: omikuji serve --fortune ID [flags]

Serves one fortune: the draw and the probes on --addr, /metrics on
--metrics-addr. Each flag can also be set by the environment variable shown.

`

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("serve", serveUsage, stderr)
	var env envReader
	hostname, err := os.Hostname()
	if err != nil {
		hostname = "unknown"
	}
	id := fs.String("fortune", env.String("OMIKUJI_FORTUNE", ""), "fortune to serve, one of the catalogue IDs (env OMIKUJI_FORTUNE)")
	addr := fs.String("addr", env.String("OMIKUJI_ADDR", server.DefaultAddr), "listen address of the draw and the probes (env OMIKUJI_ADDR)")
	metricsAddr := fs.String("metrics-addr", env.String("OMIKUJI_METRICS_ADDR", ""), "listen address of /metrics; unless set, --addr's host and port + 1000 (:9081); empty serves none (env OMIKUJI_METRICS_ADDR)")
	pod := fs.String("pod", env.String("OMIKUJI_POD", hostname), "pod name shown on the slip and in JSON; the host name unless set (env OMIKUJI_POD)")
	logLevel := fs.String("log-level", env.String("OMIKUJI_LOG_LEVEL", "info"), "debug, info, warn or error (env OMIKUJI_LOG_LEVEL)")
	keepAlive := fs.Bool("keep-alive", env.Bool("OMIKUJI_KEEP_ALIVE", false), "let draw connections persist: reloads then stick to one pod (env OMIKUJI_KEEP_ALIVE)")
	drain := fs.Duration("drain", env.Duration("OMIKUJI_DRAIN", server.DefaultDrain), "on SIGTERM, keep serving this long with readiness failing before closing the listener (env OMIKUJI_DRAIN)")
	shutdown := fs.Duration("shutdown-timeout", env.Duration("OMIKUJI_SHUTDOWN_TIMEOUT", server.DefaultShutdownTimeout), "after the drain, how long in-flight requests may take (env OMIKUJI_SHUTDOWN_TIMEOUT)")
	maxConns := fs.Int("max-conns", env.Int("OMIKUJI_MAX_CONNS", 0), fmt.Sprintf("connections the draw port holds at once; past them it answers 503. 0: %d, or what the descriptor limit (ulimit -n) carries if less (env OMIKUJI_MAX_CONNS)", server.DefaultMaxConns))
	if code, ok := parseFlags(fs, args, &env); !ok {
		return code
	}
	usageErr := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "omikuji serve: "+format+"\n", a...)
		return 2
	}
	if err := server.CheckAddr(*addr); err != nil {
		return usageErr("--addr: %v", err)
	}
	if !given(fs, "metrics-addr", "OMIKUJI_METRICS_ADDR") {
		host, _, _ := net.SplitHostPort(*addr)
		if *metricsAddr, err = defaultMetricsAddr(host, *addr); err != nil {
			return usageErr("%v", err)
		}
	}
	if *metricsAddr != "" {
		if err := server.CheckAddr(*metricsAddr); err != nil {
			return usageErr("--metrics-addr: %v", err)
		}
		if _, port, _ := net.SplitHostPort(*addr); *metricsAddr == *addr && port != "0" {
			return usageErr("--metrics-addr %q is --addr; metrics need a port of their own", *metricsAddr)
		}
	}
	f, err := fortune.Lookup(*id)
	if err != nil {
		return usageErr("--fortune: %v", err)
	}
	if err := podname.Check(*pod); err != nil {
		return usageErr("--pod: want a name of 1 to %d bytes of printable text, as omikuji draw accepts (%v)", podname.Max, err)
	}
	if *maxConns < 0 {
		return usageErr("--max-conns %d: want ≥ 0 (0: derived from the descriptor limit)", *maxConns)
	}
	if err := checkStop(*drain, *shutdown); err != nil {
		return usageErr("%v", err)
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		return usageErr("%v", err)
	}
	conns, err := serveMaxConns(*maxConns)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji serve: %v\n", err)
		return 1
	}

	ln, err := server.Listen(ctx, *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", inUse(err, addrInUse))
		return 1
	}
	var metrics net.Listener
	if *metricsAddr != "" {
		if metrics, err = server.Listen(ctx, *metricsAddr); err != nil {
			ln.Close()
			log.Error("listen", "addr", *metricsAddr, "err", inUse(err, metricsInUse))
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once stopping, a second Ctrl-C kills at once instead of waiting.
	context.AfterFunc(ctx, stop)
	srv := server.New(server.Config{Fortune: f, Pod: *pod, KeepAlive: *keepAlive, Logger: log, Drain: *drain, ShutdownTimeout: *shutdown, MaxConns: conns})
	if err := srv.Run(ctx, ln, metrics); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

// serveMaxConns is the draw port's bound: given, or server.DefaultMaxConns,
// held to what the process's descriptor limit carries with every accept
// still finding a descriptor. A limit too low for any bound, or for the one
// given, is an error at start: under load, accept would fail.
func serveMaxConns(given int) (int, error) {
	nofile, ok := rlimit.NoFile()
	if !ok {
		return cmp.Or(given, server.DefaultMaxConns), nil
	}
	carried := server.MaxConnsFor(nofile)
	switch {
	case carried < 1:
		return 0, fmt.Errorf("the descriptor limit (ulimit -n) is %d: too low to serve; raise it to at least %d", nofile, server.ReservedDescriptors+1)
	case given > carried:
		return 0, fmt.Errorf("--max-conns %d: the descriptor limit (ulimit -n) %d carries at most %d; raise the limit or lower --max-conns", given, nofile, carried)
	case given > 0:
		return given, nil
	}
	return min(carried, server.DefaultMaxConns), nil
}

// checkStop keeps the shutdown sequence inside the pod's grace period.
func checkStop(drain, shutdown time.Duration) error {
	switch {
	case drain < 0 || shutdown <= 0:
		return fmt.Errorf("--drain must be ≥ 0 and --shutdown-timeout > 0")
	case drain > server.MaxStop || shutdown > server.MaxStop || drain+shutdown > server.MaxStop:
		return fmt.Errorf("--drain %v + --shutdown-timeout %v is %v; at most %v, to stop within the pod's grace period", drain, shutdown, drain+shutdown, server.MaxStop)
	}
	return nil
}
