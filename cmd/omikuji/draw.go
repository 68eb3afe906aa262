package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/fortune"
)

// runDraw draws fortunes from a running omikuji and audits the odds. Exit
// codes: 0 consistent, 1 a test failed at --alpha, 2 bad input or no draw
// succeeded.
func runDraw(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("omikuji draw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: omikuji draw URL [flags]\n\nDraws fortunes from URL, each on a new TCP connection, and tests whether the\nodds match --expect and whether each draw is independent of the last.\nExit 0 consistent, 1 inconsistent, 2 error.\n\n")
		fs.PrintDefaults()
	}
	o := audit.Options{}
	fs.IntVar(&o.Draws, "n", 1000, "number of draws")
	fs.IntVar(&o.Concurrency, "c", 4, "draws in flight at once")
	fs.DurationVar(&o.Timeout, "timeout", 5*time.Second, "per draw, from connecting to the last byte")
	fs.BoolVar(&o.KeepAlive, "keep-alive", false, "reuse one connection per worker (shows keep-alive pinning)")
	expectFlag := fs.String("expect", fortune.DefaultReplicas().String(), "expected weights id=n,...; fortunes left out weigh 0")
	alpha := fs.Float64("alpha", 0.001, "significance level of both tests, in (0, 1)")
	asJSON := fs.Bool("json", false, "print the report as JSON")

	// The URL may come before, between or after the flags.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "omikuji draw: want exactly one URL, got %d arguments\n", len(positional))
		fs.Usage()
		return 2
	}
	o.URL = positional[0]
	expect, err := fortune.ParseCounts(*expectFlag)
	if err != nil {
		fmt.Fprintf(stderr, "omikuji draw: --expect: %v\n", err)
		return 2
	}
	if !(*alpha > 0 && *alpha < 1) {
		fmt.Fprintf(stderr, "omikuji draw: --alpha must be between 0 and 1, got %v\n", *alpha)
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v\n", err)
		return 2
	}

	// Ctrl-C stops drawing and reports what was drawn; a second one kills.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	bar := newProgressBar(stderr, o.Draws)
	if bar != nil {
		o.OnDraw = func() { _ = bar.Add(1) }
	}
	sample, err := audit.Draw(ctx, o)
	if bar != nil && sample.Stopped != "" {
		// A full bar clears itself; one cut short stays, so end its line.
		_ = bar.Exit()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v\n", err)
		return 2
	}
	report := audit.Analyze(sample, o, expect, *alpha)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(report)
	} else {
		err = report.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v\n", err)
		return 2
	}
	if report.Verdict == audit.Unreachable {
		fmt.Fprintf(stderr, "omikuji draw: no draw from %s succeeded\n", o.URL)
	}
	return report.ExitCode()
}

// newProgressBar returns a live bar on stderr when it is a terminal, else nil:
// a log or a pipe gets no control characters.
func newProgressBar(stderr io.Writer, draws int) *progressbar.ProgressBar {
	if !isTerminal(stderr) {
		return nil
	}
	return progressbar.NewOptions(draws,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription("drawing"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("draws"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
