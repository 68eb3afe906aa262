package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/server"
)

// DefaultDrain is how long a stopping replica keeps serving with failing
// readiness, so that its endpoint is removed before its listener closes.
const DefaultDrain = 5 * time.Second

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("omikuji serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: omikuji serve --fortune ID [flags]\n\nServes one fortune. Each flag can also be set by the environment variable shown.\n\n")
		fs.PrintDefaults()
	}
	id := fs.String("fortune", envDefault("OMIKUJI_FORTUNE", ""), "fortune to serve, one of the catalogue IDs (env OMIKUJI_FORTUNE)")
	addr := fs.String("addr", envDefault("OMIKUJI_ADDR", ":8081"), "listen address (env OMIKUJI_ADDR)")
	logLevel := fs.String("log-level", envDefault("OMIKUJI_LOG_LEVEL", "info"), "debug, info, warn or error (env OMIKUJI_LOG_LEVEL)")
	var keepAlive bool
	var drain, shutdown time.Duration
	envErr := errors.Join(
		envBool(&keepAlive, "OMIKUJI_KEEP_ALIVE", false),
		envDuration(&drain, "OMIKUJI_DRAIN", DefaultDrain),
		envDuration(&shutdown, "OMIKUJI_SHUTDOWN_TIMEOUT", server.DefaultShutdownTimeout),
	)
	fs.BoolVar(&keepAlive, "keep-alive", keepAlive, "let draw connections persist, as the original did: reloads then stick to one pod (env OMIKUJI_KEEP_ALIVE)")
	fs.DurationVar(&drain, "drain", drain, "on SIGTERM, keep serving this long with readiness failing before closing the listener (env OMIKUJI_DRAIN)")
	fs.DurationVar(&shutdown, "shutdown-timeout", shutdown, "after the drain, how long in-flight requests may take (env OMIKUJI_SHUTDOWN_TIMEOUT)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if envErr != nil {
		fmt.Fprintf(stderr, "omikuji serve: %v\n", envErr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "omikuji serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		fmt.Fprintf(stderr, "omikuji serve: --addr %q: want host:port or :port\n", *addr)
		return 2
	}
	f, err := fortune.Lookup(*id)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji serve: --fortune: %v\n", err)
		return 2
	}
	if drain < 0 || shutdown <= 0 {
		fmt.Fprintf(stderr, "omikuji serve: --drain must be ≥ 0 and --shutdown-timeout > 0\n")
		return 2
	}
	log, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji serve: %v\n", err)
		return 2
	}
	pod, err := os.Hostname()
	if err != nil {
		pod = "unknown"
	}

	// No TCP keep-alive probes on accepted connections: enabling them costs
	// four setsockopt calls per connection, a fifth of a draw's system
	// calls. A draw's connection lives for one response; an idle pooled one
	// (--keep-alive) is closed by the server's idle timeout instead.
	ln, err := (&net.ListenConfig{KeepAlive: -1}).Listen(ctx, "tcp", *addr)
	if err != nil {
		log.Error("listen", "addr", *addr, "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Once stopping, a second Ctrl-C kills at once instead of waiting.
	context.AfterFunc(ctx, stop)
	srv := server.New(server.Config{Fortune: f, Pod: pod, KeepAlive: keepAlive, Logger: log, ShutdownTimeout: shutdown})
	if err := srv.Run(ctx, ln, drain); err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	return 0
}

func envBool(dst *bool, name string, def bool) error {
	*dst = def
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("%s=%q: want true or false", name, v)
	}
	*dst = b
	return nil
}

func envDuration(dst *time.Duration, name string, def time.Duration) error {
	*dst = def
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%s=%q: want a duration such as 5s", name, v)
	}
	*dst = d
	return nil
}
