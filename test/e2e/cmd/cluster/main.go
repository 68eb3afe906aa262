// Command cluster brings the e2e cluster up or down by hand, for poking at
// it with kubectl. Run it as root from test/e2e:
//
//	go run ./cmd/cluster up [-mode iptables|nftables]
//	go run ./cmd/cluster mode nftables   # restart kube-proxy in another mode
//	go run ./cmd/cluster down
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/omikuji/omikuji/test/e2e/cluster"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "up":
		err = up(ctx, os.Args[2:])
	case "down":
		if len(os.Args) != 2 {
			usage()
		}
		err = cluster.DownStale(os.Stdout, true)
	case "mode":
		if len(os.Args) != 3 {
			usage()
		}
		var c *cluster.Cluster
		if c, err = cluster.Current(os.Stdout); err == nil {
			err = c.SetProxyMode(ctx, os.Args[2])
		}
	case "build":
		if len(os.Args) != 2 {
			usage()
		}
		_, err = build(ctx)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: cluster up [-mode iptables|nftables] | mode iptables|nftables | down | build")
	os.Exit(2)
}

func build(ctx context.Context) (string, error) {
	dir, err := cluster.ModuleDir(ctx)
	if err != nil {
		return "", err
	}
	return cluster.Build(ctx, cluster.BuildOptions{UpstreamDir: filepath.Join(dir, "upstream"), Log: os.Stdout})
}

func up(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	mode := fs.String("mode", "iptables", "kube-proxy mode: iptables or nftables")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		usage()
	}
	bin, err := build(ctx)
	if err != nil {
		return err
	}
	c, err := cluster.Up(ctx, cluster.Options{ProxyMode: *mode, BinDir: bin, Log: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf(`cluster: up (kube-proxy %s), everything in %s
  export KUBECONFIG=%s
  images: ctr --address %s -n k8s.io images import <docker-archive.tar>
  NodePorts answer on %s; stop it with: go run ./cmd/cluster down
`, *mode, c.Dir, c.Kubeconfig(), filepath.Join(c.Dir, "containerd", "containerd.sock"), cluster.NodeIP)
	return nil
}
