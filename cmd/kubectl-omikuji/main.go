// Command kubectl-omikuji is the kubectl plugin: `kubectl omikuji audit
// svc/NAME -n NS` works out from the cluster what each node's kube-proxy
// should do with the Service's traffic, draws from a short-lived pod on
// every node, and tests each node's draws against its own expectation.
//
//	kubectl omikuji audit svc/NAME [-n NS] [flags]
//	kubectl omikuji version
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
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/omikuji/omikuji/internal/cli"
	"github.com/omikuji/omikuji/internal/kubeaudit"
	"github.com/omikuji/omikuji/internal/version"
)

const usage = `usage: kubectl omikuji <command> [flags]

commands:
  audit svc/NAME   audit a Service from every node against what the cluster declares
  version          print the plugin's version

"kubectl omikuji audit -h" lists its flags.
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "audit":
		return runAudit(ctx, args[1:], stdout, stderr)
	case "version", "--version":
		if err := version.Get().Write(stdout, "kubectl-omikuji"); err != nil {
			fmt.Fprintf(stderr, "kubectl omikuji: %v\n", err)
			return 2
		}
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "kubectl omikuji: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// runAudit maps the flags onto kubeaudit.Run. Exit 0 consistent (or
// inconclusive), 1 inconsistent, 2 bad input or an unusable cluster.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("kubectl omikuji audit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: kubectl omikuji audit svc/NAME [-n NAMESPACE] [flags]\n\nWorks out from the Service, its EndpointSlices and the nodes which pods each\nnode's kube-proxy should send traffic to, then draws from a pod on every\nschedulable node through the ClusterIP and the node's NodePort and tests the\ndraws against that node's expectation. The pods are deleted on every path.\nExit 0 consistent, 1 inconsistent, 2 error.\n\n")
		fs.PrintDefaults()
	}
	var c kubeaudit.Config
	var namespace string
	fs.StringVar(&namespace, "n", "", "the Service's namespace (default: the kubeconfig context's)")
	fs.StringVar(&namespace, "namespace", "", "same as -n")
	kubeconfig := fs.String("kubeconfig", "", "path to the kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	kubecontext := fs.String("context", "", "the kubeconfig context to use")
	fs.StringVar(&c.Port, "port", "", "the Service port's name or number (default: its first TCP port)")
	fs.StringVar(&c.PodNamespace, "pod-namespace", "", "where the audit pods run (default: the Service's namespace)")
	fs.StringVar(&c.Image, "image", "", "an omikuji image every node can pull (default: the image the Service's pods run)")
	fs.IntVar(&c.Draws, "draws", 2000, "draws per node and path, 1 to 1000000")
	fs.IntVar(&c.Concurrency, "c", 4, "draws in flight at once in each pod")
	fs.StringVar(&c.Backend, "backend", "omikuji", "how an answer names its pod, as omikuji draw --backend")
	fs.Float64Var(&c.Alpha, "alpha", 0.001, "significance level of the tests, in (0, 1)")
	fs.DurationVar(&c.MaxTime, "max-time", 2*time.Minute, "deadline for each pod's draws")
	fs.DurationVar(&c.PullTimeout, "pull-timeout", 2*time.Minute, "how long an audit pod may take to start (pull its image)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	htmlFile := fs.String("html", "", "also write the report as one self-contained HTML page to this file")
	quiet := fs.Bool("q", false, "no progress on stderr")

	positional, err := cli.Parse(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "kubectl omikuji audit: "+format+"\n", a...)
		return 2
	}
	if len(positional) != 1 {
		return bad("want one Service, as svc/NAME, got %d arguments; for example kubectl omikuji audit svc/omikuji -n omikuji", len(positional))
	}
	kind, name, ok := strings.Cut(positional[0], "/")
	if !ok {
		kind, name = "svc", kind
	}
	if kind != "svc" && kind != "service" && kind != "services" || name == "" {
		return bad("%q: want svc/NAME, for example svc/omikuji", positional[0])
	}
	c.Service = name
	switch {
	case c.Draws < 1 || c.Draws > 1_000_000:
		return bad("--draws must be between 1 and 1000000, got %d", c.Draws)
	case c.Concurrency < 1 || c.Concurrency > 256:
		return bad("-c must be between 1 and 256, got %d", c.Concurrency)
	case !(c.Alpha > 0 && c.Alpha < 1):
		return bad("--alpha must be between 0 and 1, got %v; for example --alpha 0.001", c.Alpha)
	case c.MaxTime <= 0 || c.PullTimeout <= 0:
		return bad("--max-time and --pull-timeout must be positive, for example 2m")
	}
	if *htmlFile != "" {
		if info, err := os.Stat(filepath.Dir(*htmlFile)); err != nil || !info.IsDir() {
			return bad("--html %q: no directory %s to write it in", *htmlFile, filepath.Dir(*htmlFile))
		}
	}
	if c.Image != "" {
		c.PullPolicy = corev1.PullIfNotPresent
	}

	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubecontext})
	rest, err := cc.ClientConfig()
	if err != nil {
		return bad("no cluster configured: %v; point KUBECONFIG (or --kubeconfig) at a cluster's kubeconfig, as kubectl uses", err)
	}
	rest.Timeout = 30 * time.Second
	rest.UserAgent = "kubectl-omikuji"
	if namespace == "" {
		if namespace, _, err = cc.Namespace(); err != nil || namespace == "" {
			namespace = "default"
		}
	}
	c.Namespace = namespace
	cs, err := kubernetes.NewForConfig(rest)
	if err != nil {
		return bad("%v", err)
	}
	if !*quiet {
		c.Log = stderr
	}

	// Ctrl-C cancels the audit; its pods are still deleted.
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report, err := kubeaudit.Run(ctx, cs, c)
	if err != nil {
		var ue *kubeaudit.UsageError
		switch {
		case errors.As(err, &ue):
			return bad("%v", err)
		case ctx.Err() != nil:
			fmt.Fprintln(stderr, "kubectl omikuji audit: interrupted; the audit pods were deleted")
			return 2
		}
		fmt.Fprintf(stderr, "kubectl omikuji audit: %v\n", err)
		return 2
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(report)
	} else {
		err = report.WriteText(stdout)
	}
	if err == nil && *htmlFile != "" {
		err = cli.WriteFile(*htmlFile, report.WriteHTML)
	}
	if err != nil {
		fmt.Fprintf(stderr, "kubectl omikuji audit: %v\n", err)
		return 2
	}
	return report.ExitCode()
}
