package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/test/e2e/cluster"
)

// The names the local overlay gives things.
const (
	namespace    = "omikuji"
	serviceName  = "omikuji"
	nodePort     = 30081
	servicePort  = 8080
	fortuneLabel = "omikuji/fortune"
	podSelector  = "app.kubernetes.io/component=fortune"
)

// kube wraps the cluster with the few queries the checks need, decoding
// kubectl's JSON into just the fields they read.
type kube struct{ c *cluster.Cluster }

func (k kube) json(ctx context.Context, into any, args ...string) error {
	out, err := k.c.Kubectl(ctx, append(args, "-o", "json")...)
	if err != nil {
		return err
	}
	return json.Unmarshal(out, into)
}

type pod struct {
	Metadata struct {
		Name              string            `json:"name"`
		Labels            map[string]string `json:"labels"`
		DeletionTimestamp *string           `json:"deletionTimestamp"`
	} `json:"metadata"`
	Spec struct {
		NodeName string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		PodIP      string `json:"podIP"`
		Conditions []struct {
			Type   string `json:"type"`
			Status string `json:"status"`
		} `json:"conditions"`
	} `json:"status"`
}

func (p pod) ready() bool {
	if p.Metadata.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == "True"
		}
	}
	return false
}

func (k kube) pods(ctx context.Context) ([]pod, error) {
	var list struct{ Items []pod }
	err := k.json(ctx, &list, "-n", namespace, "get", "pods", "-l", podSelector)
	return list.Items, err
}

// readyPods maps each ready pod's name to its IP.
func (k kube) readyPods(ctx context.Context) (map[string]string, fortune.Counts, error) {
	pods, err := k.pods(ctx)
	if err != nil {
		return nil, nil, err
	}
	ready, counts := map[string]string{}, fortune.Counts{}
	for _, p := range pods {
		if p.ready() {
			ready[p.Metadata.Name] = p.Status.PodIP
			counts[p.Metadata.Labels[fortuneLabel]]++
		}
	}
	return ready, counts, nil
}

// podNodes maps each ready pod's name to the node it runs on.
func (k kube) podNodes(ctx context.Context) (map[string]string, error) {
	pods, err := k.pods(ctx)
	if err != nil {
		return nil, err
	}
	nodes := map[string]string{}
	for _, p := range pods {
		if p.ready() {
			nodes[p.Metadata.Name] = p.Spec.NodeName
		}
	}
	return nodes, nil
}

// endpoints lists the addresses of the Service's ready endpoints over all
// its EndpointSlices.
func (k kube) endpoints(ctx context.Context) ([]string, error) {
	var list struct {
		Items []struct {
			Endpoints []struct {
				Addresses  []string `json:"addresses"`
				Conditions struct {
					Ready *bool `json:"ready"`
				} `json:"conditions"`
			} `json:"endpoints"`
		}
	}
	if err := k.json(ctx, &list, "-n", namespace, "get", "endpointslices", "-l", "kubernetes.io/service-name="+serviceName); err != nil {
		return nil, err
	}
	var addrs []string
	for _, s := range list.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				addrs = append(addrs, e.Addresses...)
			}
		}
	}
	sort.Strings(addrs)
	return addrs, nil
}

func (k kube) clusterIP(ctx context.Context) (string, error) {
	out, err := k.c.Kubectl(ctx, "-n", namespace, "get", "service", serviceName, "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		return "", err
	}
	ip := strings.TrimSpace(string(out))
	if net.ParseIP(ip) == nil {
		return "", fmt.Errorf("service %s has no ClusterIP: %q", serviceName, ip)
	}
	return ip, nil
}

// waitSettled waits until exactly want pods are ready per fortune, no pod is
// terminating and the EndpointSlices list exactly the ready pods' IPs.
func (k kube) waitSettled(ctx context.Context, want fortune.Counts, timeout time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ready, err := k.settled(ctx, want)
		if err == nil {
			return ready, nil
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("not settled after %s: %v", timeout, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (k kube) settled(ctx context.Context, want fortune.Counts) (map[string]string, error) {
	pods, err := k.pods(ctx)
	if err != nil {
		return nil, err
	}
	ready, counts := map[string]string{}, fortune.Counts{}
	for _, p := range pods {
		if !p.ready() {
			return nil, fmt.Errorf("pod %s is not ready or is terminating", p.Metadata.Name)
		}
		ready[p.Metadata.Name] = p.Status.PodIP
		counts[p.Metadata.Labels[fortuneLabel]]++
	}
	for _, id := range fortune.IDs() {
		if counts[id] != want[id] {
			return nil, fmt.Errorf("ready pods per fortune %v, want %v", counts, want)
		}
	}
	eps, err := k.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	var ips []string
	for _, ip := range ready {
		ips = append(ips, ip)
	}
	sort.Strings(ips)
	if strings.Join(eps, ",") != strings.Join(ips, ",") {
		return nil, fmt.Errorf("EndpointSlices list %v, ready pods have %v", eps, ips)
	}
	return ready, nil
}

// waitAnswering draws over new connections until every pod in want has
// answered: pods Ready is not kube-proxy programmed.
func waitAnswering(ctx context.Context, url string, want map[string]string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	seen := map[string]bool{}
	var last error
	for {
		name, err := drawOne(ctx, url)
		if err == nil {
			seen[name] = true
		} else {
			// Each refused connection leaves a conntrack entry that can
			// refuse a later one (see Cluster.ForgetConnections): pace the
			// retries so there are few, which serviceReady then deletes.
			last = err
			time.Sleep(100 * time.Millisecond)
		}
		missing := 0
		for p := range want {
			if !seen[p] {
				missing++
			}
		}
		if missing == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d of %d pods never answered in %s (last error: %v)", url, missing, len(want), timeout, last)
		}
	}
}

// drawOne draws once on a new connection and returns the answering pod.
// The timeout is omikuji draw's default: long enough for a retransmitted SYN.
func drawOne(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var a struct {
		Pod string `json:"pod"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return "", err
	}
	return a.Pod, nil
}

var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
