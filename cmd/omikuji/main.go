// Command omikuji is the fortune service: "the load balancer draws the lot".
//
//	omikuji serve   one fortune replica, what runs in each pod
//	omikuji local   the whole system on this machine: replicas + an L4 balancer
//	omikuji draw    draw fortunes from a running system and audit the odds
//	omikuji version which build this is
//	omikuji completion bash|zsh  the shell's completion script
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/omikuji/omikuji/internal/version"
)

const usage = `usage: omikuji <command> [flags]

commands:
  serve   serve one fortune (what runs in each pod)
  local   run every replica and a random L4 balancer on this machine
  draw    draw fortunes from a running system and audit the odds
  version print the version, commit and Go version (also --version)
  completion bash|zsh
          print the shell's completion script

"omikuji <command> -h" lists a command's flags.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches to a subcommand and returns the process exit code:
// 0 success, 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "local":
		return runLocal(ctx, args[1:], stdout, stderr)
	case "draw":
		return runDraw(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		return runVersion(args[1:], stdout, stderr)
	case "completion":
		return runCompletion(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "omikuji: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// runVersion prints which build this is.
func runVersion(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		fmt.Fprint(stdout, "usage: omikuji version (or omikuji --version)\n\nPrints this build's version, commit and Go toolchain.\n")
		return 0
	}
	if len(args) > 0 {
		fmt.Fprintf(stderr, "omikuji version: unexpected argument %q\n", args[0])
		return 2
	}
	if err := version.Get().Write(stdout, "omikuji"); err != nil {
		return 1
	}
	return 0
}

// newFlagSet returns the flag set of "omikuji <name>": its usage line and
// description, then its flags, go to stderr.
func newFlagSet(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("omikuji "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and reports the environment's errors: ok false
// means exit with code (0 after -h, 2 for a usage error). Positional
// arguments are refused.
func parseFlags(fs *flag.FlagSet, args []string, env *envReader) (code int, ok bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if err := errors.Join(env.errs...); err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, false
	}
	return 0, true
}

// envReader reads OMIKUJI_* variables as flag defaults, trimmed of spaces,
// and collects the values it cannot parse.
type envReader struct{ errs []error }

func (e *envReader) lookup(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return strings.TrimSpace(v), ok
}

func (e *envReader) String(name, def string) string {
	if v, ok := e.lookup(name); ok {
		return v
	}
	return def
}

func (e *envReader) Bool(name string, def bool) bool {
	return envParse(e, name, def, strconv.ParseBool, "true or false")
}

func (e *envReader) Int(name string, def int) int {
	return envParse(e, name, def, strconv.Atoi, "a whole number")
}

func (e *envReader) Duration(name string, def time.Duration) time.Duration {
	return envParse(e, name, def, time.ParseDuration, "a duration such as 5s")
}

// envParse reads name with parse; a value it rejects is an error that
// says what was wanted, and def stands in.
func envParse[T any](e *envReader, name string, def T, parse func(string) (T, error), want string) T {
	v, ok := e.lookup(name)
	if !ok {
		return def
	}
	x, err := parse(v)
	if err != nil {
		e.errs = append(e.errs, fmt.Errorf("%s=%q: want %s", name, v, want))
		return def
	}
	return x
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// newLogger logs JSON, or text when stderr is a terminal.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if isTerminal(w) {
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}
