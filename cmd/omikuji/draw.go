package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/omikuji/omikuji/internal/audit"
	"github.com/omikuji/omikuji/internal/cli"
	"github.com/omikuji/omikuji/internal/fortune"
)

// headerFlags collects repeatable -H 'Name: value' flags.
type headerFlags []audit.Header

func (h *headerFlags) String() string { return "" }
func (h *headerFlags) Set(raw string) error {
	parsed, err := audit.ParseHeader(raw)
	if err != nil {
		return err
	}
	*h = append(*h, parsed)
	return nil
}

// runDraw draws from a load balancer and audits the odds. Exit codes: 0
// consistent, 1 a deciding test failed at --alpha, 2 bad input or no draw
// succeeded.
func runDraw(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("omikuji draw", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: omikuji draw URL [flags]\n\nDraws from URL, each draw on a new TCP connection, and tests whether the group\nshares match --expect, whether the backends within each group share evenly,\nand whether each draw is independent of the last.\nExit 0 consistent, 1 inconsistent, 2 error.\n\n")
		fs.PrintDefaults()
	}
	a := audit.Audit{}
	var headers headerFlags
	fs.IntVar(&a.Draws, "n", 1000, "number of draws, 1 to 1000000")
	fs.IntVar(&a.Concurrency, "c", 4, fmt.Sprintf("draws in flight at once, 1 to %d", audit.MaxConcurrency))
	fs.DurationVar(&a.Timeout, "timeout", 5*time.Second, "per draw, from connecting to the last byte")
	fs.DurationVar(&a.MaxTime, "max-time", 0, "deadline for the whole run, e.g. 2m (0: none)")
	fs.BoolVar(&a.KeepAlive, "keep-alive", false, "reuse one connection per worker (shows keep-alive pinning)")
	backendFlag := fs.String("backend", audit.KindOmikuji, "how an answer names its backend: omikuji | header:NAME | json:PATH | regex:RE")
	groupFlag := fs.String("group", "default", "how backends form groups: default (the fortune for omikuji, else each backend) | regex:RE")
	expectFlag := fs.String("expect", "", "expected shares: uniform | uniform:N | uniform:NAME,... | group=weight,... (default: "+fortune.DefaultReplicas().String()+" for omikuji, uniform otherwise)")
	testsFlag := fs.String("tests", strings.Join(audit.AllTests, ","), "the tests that decide the exit code, from fit,uniform,independence")
	fs.Var(&headers, "H", "request header 'Name: value', repeatable (Host: sets the host)")
	fs.StringVar(&a.Method, "method", "GET", "GET or HEAD (HEAD needs --backend header:NAME)")
	fs.BoolVar(&a.Insecure, "insecure", false, "accept any TLS certificate (self-signed test gateways only)")
	fs.Float64Var(&a.Alpha, "alpha", 0.001, "significance level of the tests, in (0, 1)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	htmlFile := fs.String("html", "", "also write the report as one self-contained HTML page to this file")
	watch := fs.Bool("watch", false, "draw continuously and judge each --window; live view on a terminal, one JSON line per window otherwise")
	fs.Float64Var(&a.Rate, "rate", 0, fmt.Sprintf("draws started per second at most (default %g with --watch, else unlimited)", audit.DefaultRate))
	window := fs.Int("window", audit.DefaultWindow, "with --watch: draws per judged window")
	untilFlag := fs.String("until", "", "decided: stop as soon as an anytime-valid deciding test rejects (at -n at the latest)")
	fs.Float64Var(&a.Precision, "precision", 0, "draw until every share is known within ± this of expected, e.g. 0.01 (at -n at the latest, default 1000000 with it)")

	// The URL may come before, between or after the flags.
	positional, err := cli.Parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if len(positional) != 1 {
		fmt.Fprintf(stderr, "omikuji draw: want exactly one URL, got %d arguments\n", len(positional))
		fs.Usage()
		return 2
	}
	a.URL = positional[0]
	a.Headers = headers
	if *expectFlag == "" && flagSet(fs, "expect") {
		fmt.Fprintf(stderr, "omikuji draw: --expect is empty; for example --expect %s, --expect uniform or --expect uniform:10\n", fortune.DefaultReplicas())
		return 2
	}
	if flagSet(fs, "rate") { // 0 in Options is the default; on the command line it is a mistake
		if err := audit.CheckRate(a.Rate); err != nil {
			fmt.Fprintf(stderr, "omikuji draw: %s\n", flagMessage(err, a.Backend))
			return 2
		}
	}
	if err := parseSpecs(&a, *backendFlag, *groupFlag, *expectFlag, *testsFlag); err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v\n", err)
		return 2
	}
	if a.Until, err = audit.ParseUntil(*untilFlag); err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v; for example --until decided\n", err)
		return 2
	}
	if flagSet(fs, "precision") && !(a.Precision > 0 && a.Precision < 0.5) {
		fmt.Fprintf(stderr, "omikuji draw: --precision must be a share between 0 and 0.5, got %v; for example --precision 0.01 (±1 point)\n", a.Precision)
		return 2
	}
	if *watch && (a.Until != "" || a.Precision > 0) {
		fmt.Fprintln(stderr, "omikuji draw: --until and --precision stop a run; --watch never stops (its tests are anytime-valid already): use one or the other")
		return 2
	}
	if a.Precision > 0 && !flagSet(fs, "n") {
		a.Draws = audit.MaxDraws
	}
	w := audit.Watch{Audit: a, Window: *window}
	validate := a.Validate
	if *watch {
		validate = w.Validate
	}
	if err := validate(); err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %s\n", flagMessage(err, a.Backend))
		return 2
	}
	if err := checkOutputFile(*htmlFile); err != nil {
		fmt.Fprintf(stderr, "omikuji draw: --html %v; for example --html report.html\n", err)
		return 2
	}

	// Ctrl-C stops drawing and reports what was drawn; a second one kills.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop)
	if *watch {
		return runWatch(ctx, w, *asJSON, *htmlFile, stdout, stderr)
	}
	bar := newProgressBar(stderr, a.Draws)
	if bar != nil {
		a.OnDraw = func(audit.Outcome) { _ = bar.Add(1) }
	}
	sample, err := audit.DrawUntil(ctx, a)
	if bar != nil && sample.Stopped != "" {
		// A full bar clears itself; one cut short stays, so end its line.
		_ = bar.Exit()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %s\n", flagMessage(err, a.Backend))
		return 2
	}
	report := audit.Analyze(sample, a)
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
	if *htmlFile != "" {
		if err := cli.WriteFile(*htmlFile, report.WriteHTML); err != nil {
			fmt.Fprintf(stderr, "omikuji draw: --html: %v\n", err)
			return 2
		}
	}
	if report.Verdict == audit.Unreachable {
		fmt.Fprintf(stderr, "omikuji draw: no draw from %s succeeded\n", report.URL)
	}
	return report.ExitCode()
}

// runWatch draws until Ctrl-C: a live view redrawn in place on a terminal,
// one JSON object per completed window otherwise; then the final report of
// the last window of draws: on a terminal as text, on a pipe as one more
// JSON line with --json, else as text on stderr.
func runWatch(ctx context.Context, w audit.Watch, asJSON bool, htmlFile string, stdout, stderr io.Writer) int {
	var outMu sync.Mutex
	if isTerminal(stdout) {
		w.Every = 500 * time.Millisecond
		w.Live = func(r audit.Report, changes []audit.Change) {
			outMu.Lock()
			defer outMu.Unlock()
			fmt.Fprint(stdout, "\x1b[H\x1b[2J") // home, clear: redraw in place
			_ = audit.WriteLive(stdout, r, changes, true, time.Now())
		}
	} else {
		enc := json.NewEncoder(stdout)
		w.Completed = func(s audit.WindowSummary) {
			outMu.Lock()
			defer outMu.Unlock()
			_ = enc.Encode(s)
		}
	}
	final, changes := w.Run(ctx)
	outMu.Lock()
	defer outMu.Unlock()
	if isTerminal(stdout) {
		fmt.Fprint(stdout, "\x1b[H\x1b[2J")
	}
	// A pipe carries JSON lines only: the final report is one more line
	// with --json, otherwise text on stderr
	// (docs/decisions/0023-watch-on-a-pipe-prints-json-lines-only.md).
	text := stdout
	if !isTerminal(stdout) {
		text = stderr
	}
	var err error
	if asJSON {
		err = json.NewEncoder(stdout).Encode(final)
	} else {
		err = final.WriteText(text)
		for _, kind := range []struct{ kind, heading string }{
			{audit.KindChange, "Changes of the odds while watching:"},
			{audit.KindAlarm, "Alarms while watching:"},
		} {
			heading := false
			for _, c := range changes {
				if err != nil || c.Kind != kind.kind {
					continue
				}
				if !heading {
					fmt.Fprintln(text, kind.heading)
					heading = true
				}
				fmt.Fprintf(text, "  %s window %d: %s\n", c.At.Format(time.RFC3339), c.Window, c.Text())
			}
		}
	}
	if err == nil && htmlFile != "" {
		err = cli.WriteFile(htmlFile, final.WriteHTML)
	}
	if err != nil {
		fmt.Fprintf(stderr, "omikuji draw: %v\n", err)
		return 2
	}
	return final.ExitCode()
}

// checkOutputFile makes sure a report can be written to path (when set)
// before anything is drawn: its directory exists and is a directory, and
// path is not one.
func checkOutputFile(path string) error {
	if path == "" {
		return nil
	}
	if info, err := os.Stat(filepath.Dir(path)); err != nil || !info.IsDir() {
		return fmt.Errorf("%q: no directory %s to write it in", path, filepath.Dir(path))
	}
	if info, err := os.Stat(path); err == nil && info.IsDir() {
		return fmt.Errorf("%q is a directory", path)
	}
	return nil
}

// flagSet reports whether the flag name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// parseSpecs fills in what the spec flags say. An --expect left out stays
// zero: the audit's default (the catalogue for omikuji, uniform otherwise;
// with --watch, uniform).
func parseSpecs(a *audit.Audit, backend, group, expect, tests string) error {
	var err error
	if a.Backend, err = audit.ParseBackend(backend); err != nil {
		return err
	}
	if a.Group, err = audit.ParseGroup(group); err != nil {
		return err
	}
	if expect != "" {
		if a.Expect, err = audit.ParseExpect(expect, a.Backend, a.Group); err != nil {
			return err
		}
	}
	if a.Tests, err = audit.ParseTests(tests); err != nil {
		return err
	}
	if !(a.Alpha > 0 && a.Alpha < 1) {
		return fmt.Errorf("--alpha must be between 0 and 1, got %v; for example --alpha 0.001", a.Alpha)
	}
	return nil
}

// drawFlags maps the audit's fields to the flags that set them.
var drawFlags = map[string]string{
	"Draws": "-n", "Concurrency": "-c", "Timeout": "--timeout", "MaxTime": "--max-time",
	"Rate": "--rate", "Method": "--method", "Window": "--window",
}

// flagMessage words an audit error in the command's flags.
func flagMessage(err error, backend audit.BackendSpec) string {
	var fe *audit.FieldError
	if !errors.As(err, &fe) {
		return err.Error()
	}
	flag := drawFlags[fe.Field]
	switch {
	case fe.Field == "Draws" || fe.Field == "Concurrency": // -n: draws must be …
		return fmt.Sprintf("%s: %s %s; for example %s %s", flag, fe.Subject(), fe.Problem, flag, fe.Example)
	case fe.Field == "Method" && fe.Value == "HEAD":
		return fmt.Sprintf("--method HEAD: a HEAD answer has no body, so --backend %s cannot name the backend; use --backend header:NAME, for example --method HEAD --backend header:X-Served-By", backend)
	}
	return fmt.Sprintf("%s %s; for example %s %s", flag, fe.Problem, flag, fe.Example)
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
