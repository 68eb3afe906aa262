package audit

import (
	"fmt"
	"math"
	"strings"

	"gonum.org/v1/gonum/stat/distuv"
)

// The likely-causes stage: from the shape of a measured report, what
// usually makes each test fail and each kind of draw fail, in plain words.

// nodeLocal names the traffic policies that keep draws on one node or zone.
const nodeLocal = "a node-local traffic policy (externalTrafficPolicy: Local, or internalTrafficPolicy: Local, balances only over the pods on the node you hit) or a zone-local one (trafficDistribution: PreferClose)"

// oddsCauses names what usually makes a test fail, from the shape of the sample.
func (r *Report) oddsCauses() []string {
	var causes []string
	if !r.Independence.Passed {
		// Repeats of one backend, against chance: far fewer is dealing out
		// in turn, far more is sticking; in between, some other order.
		z := (float64(r.Repeats) - r.RepeatsExpected) / math.Sqrt(max(r.RepeatsExpected, 1))
		repeats := fmt.Sprintf("consecutive draws came from the same backend %d times where chance expects %.0f", r.Repeats, r.RepeatsExpected)
		var cause string
		switch {
		case z > 3:
			cause = fmt.Sprintf("Consecutive draws stick to one backend: %s. Keep-alive pinning (a proxy in between reuses connections), session affinity (sessionAffinity: ClientIP, a sticky cookie) or a backend that answers in bursts.", repeats)
		case z < -3:
			cause = fmt.Sprintf("The balancer deals the backends out in a fixed order instead of choosing at random: %s. That is round-robin cycling (kube-proxy IPVS with rr, a round-robin proxy or ingress in front), or with weights a deterministic weighted cycle (nginx upstream weight=, a smooth weighted round-robin).", repeats)
		default:
			cause = fmt.Sprintf("Which backend comes next follows from the one before, in a fixed pattern (%s, about as chance would): a deterministic weighted cycle (nginx upstream weight=, a smooth weighted round-robin such as HAProxy's or IPVS wrr), or round-robin cycling over backends that share names.", repeats)
		}
		// Dealing backends out in turn also makes the shares too exact:
		// the statistic falls in the lower tail.
		if g := r.GoodnessOfFit; z <= 3 && g.Applicable && g.DF > 0 && (distuv.ChiSquared{K: float64(g.DF)}).CDF(g.Statistic) < r.Alpha {
			cause += " The shares are also closer to the weights than chance allows, as when backends are dealt out in turn."
		}
		causes = append(causes, cause)
	}
	if !r.Uniformity.Passed {
		seen := r.BackendsSeen - len(r.BackendsUnexpected) // uniform:NAME,...: the listed ones
		if r.BackendsWanted > 0 && seen < r.BackendsWanted {
			causes = append(causes, fmt.Sprintf("Only %d of %d backends answered: %s; backends that are dead or not Ready (no endpoints); session affinity or hash balancing (sessionAffinity: ClientIP, nginx hash $remote_addr) sending this one client to one backend; or keep-alive pinning.", seen, r.BackendsWanted, nodeLocal))
		} else if r.BackendsWanted > 0 && seen > r.BackendsWanted {
			causes = append(causes, fmt.Sprintf("%d backends answered where %d were expected: a rollout or scale-up in progress, or uniform:N is not what is deployed.", seen, r.BackendsWanted))
		}
		if r.Uniformity.DF > 0 && r.Uniformity.Statistic > 0 {
			causes = append(causes, "Backends within a group get unequal shares: a slow or overloaded backend (least-connections or latency-aware balancing sends it fewer draws), a backend flapping between Ready and not Ready, weighted endpoints, or topology-aware routing that prefers the local zone (trafficDistribution: PreferClose).")
		}
	}
	if r.GoodnessOfFit.Passed {
		return causes
	}
	expected := 0
	var missing, unexpected []string
	for _, row := range r.Groups {
		if row.Weight > 0 {
			expected++
		}
		if row.Weight > 0 && row.Count == 0 {
			missing = append(missing, row.ID)
		}
		if row.Weight == 0 && row.Count > 0 {
			unexpected = append(unexpected, row.ID)
		}
	}
	specific := len(causes)
	switch {
	case r.KeepAlive:
		causes = append(causes, fmt.Sprintf("Keep-alive pinning, as asked (--keep-alive): each worker (%d here) kept one connection, and the balancer picks a backend only when a connection opens, so all of a worker's draws came from one backend.", r.Concurrency))
	case r.BackendsSeen > 0 && r.BackendsSeen <= r.Concurrency && r.BackendsSeen < expected:
		// Fewer backends than expected groups, and no more than one per
		// worker: connections stick to backends somewhere.
		causes = append(causes, fmt.Sprintf("Every draw came from just %d backend(s) although each used a new connection: the Service has sessionAffinity: ClientIP, or a proxy in between keeps connections alive to the backends (keep-alive pinning).", r.BackendsSeen))
	}
	if len(unexpected) > 0 {
		causes = append(causes, fmt.Sprintf("%s came up although --expect gives it weight 0: the expectation is not what is deployed.", strings.Join(unexpected, ", ")))
	}
	if len(missing) > 0 && !r.KeepAlive {
		causes = append(causes, fmt.Sprintf("%s never came up: fewer groups answered than expected. Its backends are dead or not Ready (the Service has no endpoints for them), or %s and the node you hit runs none of them.", strings.Join(missing, ", "), nodeLocal))
	}
	if len(causes) == specific {
		causes = append(causes, fmt.Sprintf("The shares differ from the weights: compare the backends seen per group with the replicas. A backend that is not Ready or is slow takes fewer draws; %s; or --expect does not match what is deployed.", nodeLocal))
	}
	return causes
}

// failureCauses explains failed draws by kind.
func (r *Report) failureCauses() []string {
	var causes []string
	httpErrors := 0
	for kind, n := range r.Failures {
		if strings.HasPrefix(kind, "http_status_") {
			httpErrors += n
		}
	}
	if n := r.Failures[FailRefused]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d connection(s) refused: nothing listens at that address and port (wrong URL or NodePort), the Service has no Ready endpoints, or a backend is dead.", n))
	}
	if n := r.Failures[FailTimeout]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) timed out: a firewall or security group drops the packets, the node is unreachable, or a backend is slow or overloaded (see --timeout).", n))
	}
	if n := r.Failures[FailReset]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d connection(s) reset or closed early: backends restarting or terminating mid-draw.", n))
	}
	if n := r.Failures[FailDNS]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed to resolve the host name.", n))
	}
	if n := r.Failures[FailTLS]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed the TLS handshake: a certificate the system roots do not trust (use --insecure only for a self-signed test gateway), or TLS spoken to a plain-HTTP port.", n))
	}
	if httpErrors > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) answered with an HTTP status other than 200: the URL is not a draw endpoint, a redirect (not followed), or a proxy in front answered instead of a backend (for an Ingress or Gateway, check -H 'Host: …').", httpErrors))
	}
	if n := r.Failures[FailBadBody] + r.Failures[FailUnknown]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d answer(s) were not omikuji draws or were longer than 64 KiB: is the URL an omikuji service, or does --backend say how its answers name the backend?", n))
	}
	if n := r.Failures[FailNoBackend]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d answer(s) did not name a backend the way --backend %s reads it; see failure_examples in --json.", n, r.BackendSpec))
	}
	if n := r.Failures[FailTooMany]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) came from backends past the cap of %d distinct names: does the backend name change on every answer (a request ID rather than a host name)?", n, MaxBackends))
	}
	if n := r.Failures[FailOther]; n > 0 {
		causes = append(causes, fmt.Sprintf("%d draw(s) failed otherwise; see failure_examples in --json.", n))
	}
	return causes
}
