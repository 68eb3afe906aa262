// Command omikuji is the fortune service: "the load balancer draws the lot".
//
//	omikuji serve   one fortune replica, what runs in each pod
//	omikuji local   the whole system on this machine: replicas + an L4 balancer
//	omikuji draw    draw fortunes from a running system and audit the odds
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

const usage = `usage: omikuji <command> [flags]

commands:
  serve   serve one fortune (what runs in each pod)
  local   run every replica and a random L4 balancer on this machine
  draw    draw fortunes from a running system and audit the odds

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
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "omikuji: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// newLogger logs JSON, or text when stderr is a terminal.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
	}
	return slog.New(slog.NewJSONHandler(w, opts)), nil
}

// envDefault returns the environment variable's value, or def when unset.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return strings.TrimSpace(v)
	}
	return def
}
