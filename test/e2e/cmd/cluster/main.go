// Command cluster brings the e2e cluster up or down by hand, for poking at
// it with kubectl. Run it as root from test/e2e:
//
//	go run ./cmd/cluster up [-mode iptables|nftables] [-nodes 2]
//	go run ./cmd/cluster mode nftables   # restart kube-proxy in another mode
//	go run ./cmd/cluster import image.tar   # into every node's containerd
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
	case "import":
		if len(os.Args) != 3 {
			usage()
		}
		var c *cluster.Cluster
		if c, err = cluster.Current(os.Stdout); err == nil {
			err = c.ImportImage(ctx, os.Args[2])
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
	fmt.Fprintln(os.Stderr, "usage: cluster up [-mode iptables|nftables] [-nodes n] | mode iptables|nftables | import image.tar | down | build")
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
	nodes := fs.Int("nodes", 2, fmt.Sprintf("how many nodes, 1 to %d (node 2 and on run in network namespaces of their own)", cluster.MaxNodes))
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		usage()
	}
	if *nodes < 1 || *nodes > cluster.MaxNodes {
		fmt.Fprintf(os.Stderr, "cluster: -nodes %d: want 1 to %d\n", *nodes, cluster.MaxNodes)
		os.Exit(2)
	}
	bin, err := build(ctx)
	if err != nil {
		return err
	}
	c, err := cluster.Up(ctx, cluster.Options{ProxyMode: *mode, Nodes: *nodes, BinDir: bin, Log: os.Stdout})
	if err != nil {
		return err
	}
	fmt.Printf("cluster: up (kube-proxy %s, %d nodes), everything in %s\n  export KUBECONFIG=%s\n", *mode, len(c.Nodes), c.Dir, c.Kubeconfig())
	for _, n := range c.Nodes {
		where := "the host's network namespace"
		if n.Netns != "" {
			where = "network namespace " + n.Netns + " (ip netns exec " + n.Netns + " ...)"
		}
		fmt.Printf("  node %s: NodePorts on %s, pods in %s, %s\n", n.Name, n.IP, n.PodCIDR, where)
	}
	fmt.Println("  images: go run ./cmd/cluster import <docker-archive.tar>   (into every node's containerd)")
	fmt.Println("  stop it with: go run ./cmd/cluster down")
	return nil
}
