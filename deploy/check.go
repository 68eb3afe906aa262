package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/server"
)

// The facts about the kit that other parts of omikuji rely on: the
// real-cluster tests and the docs reach the Service by these.
const (
	Namespace   = "omikuji"
	ServiceName = "omikuji"
	ServicePort = 8080
	NodePort    = 30081
	// FortuneLabel carries the fortune ID on each Deployment's pods.
	FortuneLabel = "omikuji/fortune"
)

// Check runs every invariant on kit and returns one readable error per
// violation, each naming the object at fault; nil means the kit is sound.
func Check(kit *Kit) []error {
	var errs []error
	for _, check := range []func(*Kit) []error{
		checkNamespace,
		checkFortunes,
		checkSelectors,
		checkService,
		checkPorts,
		checkPodSecurity,
		checkHardening,
		checkMemoryLimit,
		checkProbes,
		checkRollout,
		checkTopologySpread,
		checkMetricsPort,
		checkNetworkPolicy,
		checkServiceMonitors,
		checkDisruptionBudgets,
	} {
		errs = append(errs, check(kit)...)
	}
	return errs
}

func checkNamespace(kit *Kit) []error {
	var errs []error
	if len(kit.Namespaces) != 1 || kit.Namespaces[0].Name != Namespace {
		errs = append(errs, fmt.Errorf("want exactly one Namespace %q, got %d", Namespace, len(kit.Namespaces)))
	} else if got := kit.Namespaces[0].Labels[psapi.EnforceLevelLabel]; got != string(psapi.LevelRestricted) {
		errs = append(errs, fmt.Errorf("Namespace %s: label %s=%q, want %q so the API server rejects any pod below it", Namespace, psapi.EnforceLevelLabel, got, psapi.LevelRestricted))
	}
	in := func(kind, name, ns string) {
		if ns != Namespace {
			errs = append(errs, fmt.Errorf("%s %s: in namespace %q, want %q", kind, name, ns, Namespace))
		}
	}
	for _, d := range kit.Deployments {
		in("Deployment", d.Name, d.Namespace)
	}
	for _, s := range kit.Services {
		in("Service", s.Name, s.Namespace)
	}
	for _, p := range kit.NetworkPolicies {
		in("NetworkPolicy", p.Name, p.Namespace)
	}
	return errs
}

// checkFortunes ties the Deployments to the catalogue: one per fortune,
// named by its ID, serving that fortune, with the catalogue's replicas.
func checkFortunes(kit *Kit) []error {
	var errs []error
	want := fortune.DefaultReplicas()
	seen := make(map[string]bool)
	for _, d := range kit.Deployments {
		n, ok := want[d.Name]
		if !ok {
			errs = append(errs, fmt.Errorf("Deployment %s: not a fortune of the catalogue (%s)", d.Name, strings.Join(fortune.IDs(), ", ")))
			continue
		}
		seen[d.Name] = true
		switch {
		case d.Spec.Replicas == nil:
			errs = append(errs, fmt.Errorf("Deployment %s: replicas not set; the catalogue says %d", d.Name, n))
		case int(*d.Spec.Replicas) != n:
			errs = append(errs, fmt.Errorf("Deployment %s: replicas %d, but the catalogue (internal/fortune) says %d: the odds have drifted", d.Name, *d.Spec.Replicas, n))
		}
		if got := d.Spec.Template.Labels[FortuneLabel]; got != d.Name {
			errs = append(errs, fmt.Errorf("Deployment %s: pod label %s=%q, want %q", d.Name, FortuneLabel, got, d.Name))
		}
		c, err := fortuneContainer(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if got, _ := flagValue(c.Args, "fortune"); got != d.Name {
			errs = append(errs, fmt.Errorf("Deployment %s: container args %q serve fortune %q, want %q", d.Name, c.Args, got, d.Name))
		}
		if len(c.Args) == 0 || c.Args[0] != "serve" {
			errs = append(errs, fmt.Errorf("Deployment %s: container args %q do not start with the serve command", d.Name, c.Args))
		}
	}
	for _, id := range fortune.IDs() {
		if !seen[id] {
			errs = append(errs, fmt.Errorf("no Deployment for fortune %s", id))
		}
	}
	return errs
}

// checkSelectors: each Deployment selects its own pods and nobody else's.
// Kubernetes does not support controllers with overlapping selectors (the
// original's one shared label); they may fight over the same pods.
func checkSelectors(kit *Kit) []error {
	var errs []error
	selectors := make([]labels.Selector, len(kit.Deployments))
	for i, d := range kit.Deployments {
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil || sel.Empty() {
			errs = append(errs, fmt.Errorf("Deployment %s: invalid or empty selector: %v", d.Name, err))
			continue
		}
		selectors[i] = sel
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			errs = append(errs, fmt.Errorf("Deployment %s: selector %s does not match its own pod template labels %v", d.Name, sel, d.Spec.Template.Labels))
		}
	}
	for i, a := range kit.Deployments {
		for j, b := range kit.Deployments {
			if i >= j || selectors[i] == nil || selectors[j] == nil {
				continue
			}
			if selectorsOverlap(a.Spec.Selector, b.Spec.Selector) ||
				selectors[i].Matches(labels.Set(b.Spec.Template.Labels)) ||
				selectors[j].Matches(labels.Set(a.Spec.Template.Labels)) {
				errs = append(errs, fmt.Errorf("Deployments %s and %s: selectors overlap (%s / %s); each must select only its own fortune's pods", a.Name, b.Name, selectors[i], selectors[j]))
			}
		}
	}
	return errs
}

// selectorsOverlap reports whether some label set satisfies both
// selectors' matchLabels: no key is required with two different values.
// Selectors with matchExpressions are judged by the template checks alone.
func selectorsOverlap(a, b *metav1.LabelSelector) bool {
	if len(a.MatchExpressions) > 0 || len(b.MatchExpressions) > 0 {
		return false
	}
	for k, v := range a.MatchLabels {
		if w, ok := b.MatchLabels[k]; ok && w != v {
			return false
		}
	}
	return true
}

// checkService: the one Service draws among exactly the four fortunes'
// pods, with nothing that skews the per-connection random choice.
func checkService(kit *Kit) []error {
	if len(kit.Services) != 1 || kit.Services[0].Name != ServiceName {
		return []error{fmt.Errorf("want exactly one Service %q, got %d", ServiceName, len(kit.Services))}
	}
	s := kit.Services[0]
	var errs []error
	if len(s.Spec.Selector) == 0 {
		return []error{fmt.Errorf("Service %s: no selector", s.Name)}
	}
	sel := labels.SelectorFromSet(s.Spec.Selector)
	var selected []string
	for _, d := range kit.Deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			selected = append(selected, d.Name)
		}
	}
	slices.Sort(selected)
	want := fortune.IDs()
	slices.Sort(want)
	if !slices.Equal(selected, want) {
		errs = append(errs, fmt.Errorf("Service %s: selector %s selects the pods of [%s], want exactly [%s]", s.Name, sel, strings.Join(selected, " "), strings.Join(want, " ")))
	}
	if s.Spec.SessionAffinity != corev1.ServiceAffinityNone {
		errs = append(errs, fmt.Errorf("Service %s: sessionAffinity %q pins a client to the fortune it drew first; want None", s.Name, s.Spec.SessionAffinity))
	}
	switch s.Spec.Type {
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeNodePort:
		if s.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster {
			errs = append(errs, fmt.Errorf("Service %s: externalTrafficPolicy %q draws only among the pods on the receiving node; want Cluster", s.Name, s.Spec.ExternalTrafficPolicy))
		}
	default:
		errs = append(errs, fmt.Errorf("Service %s: type %q, want LoadBalancer or NodePort", s.Name, s.Spec.Type))
	}
	if p := s.Spec.InternalTrafficPolicy; p != nil && *p != corev1.ServiceInternalTrafficPolicyCluster {
		errs = append(errs, fmt.Errorf("Service %s: internalTrafficPolicy %q draws only among the pods on the client's node; want Cluster", s.Name, *p))
	}
	if s.Spec.TrafficDistribution != nil {
		errs = append(errs, fmt.Errorf("Service %s: trafficDistribution %q prefers nearby pods; leave it unset", s.Name, *s.Spec.TrafficDistribution))
	}
	if isAWSNLB(s) {
		if t := s.Annotations[nlbTargetTypeAnnotation]; t != "instance" {
			errs = append(errs, fmt.Errorf("Service %s: AWS NLB target type %q: with ip targets the NLB picks the pods itself, by flow hash and per zone; set %s: instance so that kube-proxy draws", s.Name, t, nlbTargetTypeAnnotation))
		}
	}
	for _, a := range []string{"service.kubernetes.io/topology-mode", "service.kubernetes.io/topology-aware-hints"} {
		if v, ok := s.Annotations[a]; ok {
			errs = append(errs, fmt.Errorf("Service %s: annotation %s=%q turns on topology-aware routing; remove it", s.Name, a, v))
		}
	}
	return errs
}

const nlbTargetTypeAnnotation = "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"

// isAWSNLB tells whether the AWS Load Balancer Controller gives the Service
// a Network Load Balancer: by load balancer class, or by the type annotation
// it shares with the legacy cloud provider.
func isAWSNLB(s corev1.Service) bool {
	if c := s.Spec.LoadBalancerClass; c != nil && *c == "service.k8s.aws/nlb" {
		return true
	}
	t := s.Annotations["service.beta.kubernetes.io/aws-load-balancer-type"]
	return t == "external" || t == "nlb"
}

// checkPorts: the Service's port reaches the container's named port on
// every fortune, and the node port is the documented one, inside the range.
func checkPorts(kit *Kit) []error {
	if len(kit.Services) != 1 {
		return nil // checkService reports it
	}
	s := kit.Services[0]
	if len(s.Spec.Ports) != 1 {
		return []error{fmt.Errorf("Service %s: %d ports, want one", s.Name, len(s.Spec.Ports))}
	}
	p := s.Spec.Ports[0]
	var errs []error
	if p.Port != ServicePort {
		errs = append(errs, fmt.Errorf("Service %s: port %d, want %d", s.Name, p.Port, ServicePort))
	}
	if p.Protocol != corev1.ProtocolTCP {
		errs = append(errs, fmt.Errorf("Service %s: protocol %q, want TCP", s.Name, p.Protocol))
	}
	if p.NodePort < 30000 || p.NodePort > 32767 {
		errs = append(errs, fmt.Errorf("Service %s: nodePort %d is outside the default NodePort range 30000-32767", s.Name, p.NodePort))
	} else if p.NodePort != NodePort {
		errs = append(errs, fmt.Errorf("Service %s: nodePort %d, want %d", s.Name, p.NodePort, NodePort))
	}
	for _, d := range kit.Deployments {
		c, err := fortuneContainer(d)
		if err != nil {
			continue // checkFortunes reports it
		}
		if _, ok := resolvePort(c, p.TargetPort); !ok {
			errs = append(errs, fmt.Errorf("Service %s: targetPort %s is not a containerPort of Deployment %s (ports %v)", s.Name, p.TargetPort.String(), d.Name, portNames(c)))
		}
	}
	return errs
}

// checkPodSecurity evaluates every pod template against the Pod Security
// Standard "restricted", latest version, as the admission plugin would.
func checkPodSecurity(kit *Kit) []error {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return []error{err}
	}
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	var errs []error
	for _, d := range kit.Deployments {
		for _, r := range evaluator.EvaluatePod(level, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
			if !r.Allowed {
				errs = append(errs, fmt.Errorf("Deployment %s: violates Pod Security restricted: %s (%s)", d.Name, r.ForbiddenReason, r.ForbiddenDetail))
			}
		}
	}
	return errs
}

// checkHardening covers what "restricted" leaves out.
func checkHardening(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		spec := d.Spec.Template.Spec
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			errs = append(errs, fmt.Errorf("Deployment %s: automountServiceAccountToken must be false (the server never calls the API)", d.Name))
		}
		for _, c := range spec.Containers {
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				errs = append(errs, fmt.Errorf("Deployment %s: container %s: readOnlyRootFilesystem must be true", d.Name, c.Name))
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
				errs = append(errs, fmt.Errorf("Deployment %s: container %s: cpu and memory requests must be set", d.Name, c.Name))
			}
			if c.Resources.Limits.Memory().IsZero() {
				errs = append(errs, fmt.Errorf("Deployment %s: container %s: a memory limit must be set", d.Name, c.Name))
			}
		}
	}
	return errs
}

// checkMemoryLimit: the Go runtime knows the container's memory limit
// (GOMEMLIMIT from the downward API, in bytes), so that it collects harder
// near the limit and hands memory back the usual way, with no policy of
// the server's own.
func checkMemoryLimit(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		c, err := fortuneContainer(d)
		if err != nil {
			continue
		}
		var ref *corev1.ResourceFieldSelector
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" && e.ValueFrom != nil {
				ref = e.ValueFrom.ResourceFieldRef
			}
		}
		switch {
		case ref == nil || ref.Resource != "limits.memory" || (ref.ContainerName != "" && ref.ContainerName != c.Name):
			errs = append(errs, fmt.Errorf("Deployment %s: container %s: want env GOMEMLIMIT from resourceFieldRef limits.memory, so that the Go runtime knows the memory limit", d.Name, c.Name))
		case !ref.Divisor.IsZero() && ref.Divisor.Value() != 1:
			errs = append(errs, fmt.Errorf("Deployment %s: container %s: GOMEMLIMIT's divisor is %s; the runtime reads a bare number as bytes, so want none (1)", d.Name, c.Name, ref.Divisor.String()))
		}
	}
	return errs
}

// checkProbes asks the shipped server, running on loopback with its draw
// port held at its connection bound by a flood, about each probe on the port
// the probe names, instead of repeating the paths here: readiness must answer
// 200 and fail once the replica drains, liveness must answer 200 even while
// draining (or the kubelet would restart a pod that is shutting down
// cleanly), and neither may fail because the draw port is saturated
// (docs/decisions/0024-probes-on-the-metrics-port.md).
func checkProbes(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		f, err := fortune.Lookup(d.Name)
		if err != nil {
			continue // checkFortunes reports it
		}
		c, err := fortuneContainer(d)
		if err != nil {
			continue
		}
		srv, err := startServer(f)
		if err != nil {
			return append(errs, err)
		}
		release, err := srv.saturate()
		if err != nil {
			srv.stop()
			return append(errs, err)
		}
		probes := []struct {
			kind         string
			p            *corev1.Probe
			okOnDraining bool
		}{
			{"readinessProbe", c.ReadinessProbe, false},
			{"livenessProbe", c.LivenessProbe, true},
		}
		for _, probe := range probes {
			where := fmt.Sprintf("Deployment %s: %s", d.Name, probe.kind)
			if probe.p == nil || probe.p.HTTPGet == nil {
				errs = append(errs, fmt.Errorf("%s: want an httpGet probe", where))
				continue
			}
			get := probe.p.HTTPGet
			if cp, ok := resolvePort(c, get.Port); !ok || cp.Name != "metrics" {
				errs = append(errs, fmt.Errorf("%s: port %s is not the metrics containerPort (ports %v): a flood of the draw port would fail the probe", where, get.Port.String(), portNames(c)))
			}
			if code := srv.status(srv.portURL(c, get.Port), get.Path); code != http.StatusOK {
				errs = append(errs, fmt.Errorf("%s: with the draw port held at its bound, the server answers GET %s on port %s with %d, want 200", where, get.Path, get.Port.String(), code))
			}
		}
		srv.BeginShutdown()
		for _, probe := range probes {
			if probe.p == nil || probe.p.HTTPGet == nil {
				continue
			}
			where := fmt.Sprintf("Deployment %s: %s", d.Name, probe.kind)
			path := probe.p.HTTPGet.Path
			code := srv.status(srv.portURL(c, probe.p.HTTPGet.Port), path)
			if probe.okOnDraining && code != http.StatusOK {
				errs = append(errs, fmt.Errorf("%s: GET %s answers %d while the replica drains; liveness must stay 200", where, path, code))
			}
			if !probe.okOnDraining && code == http.StatusOK {
				errs = append(errs, fmt.Errorf("%s: GET %s still answers 200 while the replica drains, so the pod would stay in the draw; probe the server's readiness path", where, path))
			}
		}
		release()
		if err := srv.stop(); err != nil {
			errs = append(errs, err)
		}
		if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.LivenessProbe.HTTPGet.Path != server.HealthPath {
			errs = append(errs, fmt.Errorf("Deployment %s: livenessProbe: path %s is not the server's health path %s (a draw path would count probes as draws)", d.Name, c.LivenessProbe.HTTPGet.Path, server.HealthPath))
		}
	}
	return errs
}

// checkRollout: a rolling update never takes a fortune's last ready pod
// away, and the kubelet waits for drain + shutdown before killing a pod.
func checkRollout(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		st := d.Spec.Strategy
		if st.Type != appsv1.RollingUpdateDeploymentStrategyType || st.RollingUpdate == nil || st.RollingUpdate.MaxUnavailable == nil ||
			st.RollingUpdate.MaxUnavailable.String() != "0" {
			errs = append(errs, fmt.Errorf("Deployment %s: want strategy RollingUpdate with maxUnavailable 0, so a fortune never drops out of the draw during a rollout", d.Name))
		}
		c, err := fortuneContainer(d)
		if err != nil {
			continue
		}
		drain, err := durationFlag(c.Args, "drain", server.DefaultDrain)
		if err != nil {
			errs = append(errs, fmt.Errorf("Deployment %s: %w", d.Name, err))
			continue
		}
		shutdown, err := durationFlag(c.Args, "shutdown-timeout", server.DefaultShutdownTimeout)
		if err != nil {
			errs = append(errs, fmt.Errorf("Deployment %s: %w", d.Name, err))
			continue
		}
		grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
			grace = *g
		}
		if drain+shutdown > server.MaxStop {
			errs = append(errs, fmt.Errorf("Deployment %s: drain %v + shutdown %v is above the server's bound of %v; serve would refuse to start", d.Name, drain, shutdown, server.MaxStop))
		}
		if time.Duration(grace)*time.Second <= drain+shutdown {
			errs = append(errs, fmt.Errorf("Deployment %s: terminationGracePeriodSeconds %d is not above drain %v + shutdown %v", d.Name, grace, drain, shutdown))
		}
	}
	return errs
}

// checkTopologySpread: spread over nodes and zones, but never so strictly
// that a single-node cluster cannot schedule the pods.
func checkTopologySpread(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		keys := map[string]bool{}
		for _, t := range d.Spec.Template.Spec.TopologySpreadConstraints {
			keys[t.TopologyKey] = true
			if t.WhenUnsatisfiable != corev1.ScheduleAnyway {
				errs = append(errs, fmt.Errorf("Deployment %s: topology spread on %s is %s; want ScheduleAnyway so that one node (or one zone) can run every fortune", d.Name, t.TopologyKey, t.WhenUnsatisfiable))
			}
			sel, err := metav1.LabelSelectorAsSelector(t.LabelSelector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				errs = append(errs, fmt.Errorf("Deployment %s: topology spread on %s does not select the Deployment's own pods", d.Name, t.TopologyKey))
			}
		}
		for _, k := range []string{corev1.LabelHostname, corev1.LabelTopologyZone} {
			if !keys[k] {
				errs = append(errs, fmt.Errorf("Deployment %s: no topology spread over %s", d.Name, k))
			}
		}
	}
	return errs
}

// checkNetworkPolicy: the fortunes' pods admit only their HTTP port and
// open no connection at all.
func checkNetworkPolicy(kit *Kit) []error {
	if len(kit.NetworkPolicies) != 1 {
		return []error{fmt.Errorf("want exactly one NetworkPolicy for the fortunes, got %d", len(kit.NetworkPolicies))}
	}
	np := kit.NetworkPolicies[0]
	var errs []error
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil {
		return []error{fmt.Errorf("NetworkPolicy %s: %w", np.Name, err)}
	}
	for _, d := range kit.Deployments {
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s: podSelector %s does not select Deployment %s's pods", np.Name, sel, d.Name))
		}
	}
	if !slices.Contains(np.Spec.PolicyTypes, "Ingress") || !slices.Contains(np.Spec.PolicyTypes, "Egress") {
		errs = append(errs, fmt.Errorf("NetworkPolicy %s: policyTypes %v, want both Ingress and Egress", np.Name, np.Spec.PolicyTypes))
	}
	if len(np.Spec.Egress) > 0 {
		errs = append(errs, fmt.Errorf("NetworkPolicy %s: allows egress; the server opens no connections, deny all", np.Name))
	}
	var ports []string
	admitted := map[string]bool{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s: an ingress rule admits every port; admit only the http and metrics ports", np.Name))
		}
		for _, p := range rule.Ports {
			ports = append(ports, portString(p.Port))
			if p.Port == nil || p.EndPort != nil {
				errs = append(errs, fmt.Errorf("NetworkPolicy %s: ingress port %s admits a range; admit only the http and metrics ports", np.Name, portString(p.Port)))
				continue
			}
			for _, d := range kit.Deployments {
				c, err := fortuneContainer(d)
				if err != nil {
					continue
				}
				if cp, ok := resolvePort(c, *p.Port); !ok || (cp.Name != "http" && cp.Name != "metrics") {
					errs = append(errs, fmt.Errorf("NetworkPolicy %s: ingress port %s is not Deployment %s's http or metrics containerPort", np.Name, portString(p.Port), d.Name))
				} else {
					admitted[cp.Name] = true
				}
			}
		}
	}
	if len(ports) == 0 {
		errs = append(errs, fmt.Errorf("NetworkPolicy %s: admits no ingress port, so no draw could reach a pod", np.Name))
	}
	for _, name := range []string{"http", "metrics"} {
		if len(ports) > 0 && !admitted[name] {
			errs = append(errs, fmt.Errorf("NetworkPolicy %s: does not admit the %s port", np.Name, name))
		}
	}
	return errs
}

// checkMetricsPort: every pod names the port serve answers /metrics on
// (--metrics-addr, which the manifests set: the default follows --addr)
// "metrics", and no Service reaches it: a scrape costs far more than a draw
// and belongs to Prometheus alone.
func checkMetricsPort(kit *Kit) []error {
	var errs []error
	for _, d := range kit.Deployments {
		c, err := fortuneContainer(d)
		if err != nil {
			continue
		}
		addr, ok := flagValue(c.Args, "metrics-addr")
		if !ok {
			errs = append(errs, fmt.Errorf("Deployment %s: no --metrics-addr in the container args; serve's default follows --addr, so name the port the containerPort metrics declares", d.Name))
			continue
		}
		_, port, err := net.SplitHostPort(addr)
		want, perr := strconv.Atoi(port)
		if err != nil || perr != nil {
			errs = append(errs, fmt.Errorf("Deployment %s: --metrics-addr %q: want host:port", d.Name, addr))
			continue
		}
		cp, ok := resolvePort(c, intstr.FromString("metrics"))
		if !ok {
			errs = append(errs, fmt.Errorf("Deployment %s: no containerPort named metrics (ports %v); Prometheus scrapes the pod by that name", d.Name, portNames(c)))
		} else if int(cp.ContainerPort) != want {
			errs = append(errs, fmt.Errorf("Deployment %s: containerPort metrics is %d, but serve answers /metrics on %d", d.Name, cp.ContainerPort, want))
		}
		for _, s := range kit.Services {
			for _, p := range s.Spec.Ports {
				if tp, ok := resolvePort(c, p.TargetPort); ok && tp.Name == "metrics" {
					errs = append(errs, fmt.Errorf("Service %s: port %s reaches Deployment %s's metrics port; keep /metrics off the Service", s.Name, p.Name, d.Name))
				}
			}
		}
	}
	return errs
}

// checkServiceMonitors: the optional monitoring component's ServiceMonitor
// selects the Service, scrapes one of its ports by name (its relabeling then
// points each target at the pod's metrics port), at a path the shipped
// server answers on its metrics port.
func checkServiceMonitors(kit *Kit) []error {
	var errs []error
	for _, m := range kit.ServiceMonitors {
		if m.Namespace != Namespace {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s: in namespace %q, want %q", m.Name, m.Namespace, Namespace))
		}
		sel, err := metav1.LabelSelectorAsSelector(&m.Spec.Selector)
		if err != nil {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s: %w", m.Name, err))
			continue
		}
		var ports []string
		for _, s := range kit.Services {
			if !sel.Matches(labels.Set(s.Labels)) {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: selector %s misses Service %s", m.Name, sel, s.Name))
			}
			for _, p := range s.Spec.Ports {
				ports = append(ports, p.Name)
			}
		}
		if len(m.Spec.Endpoints) == 0 {
			errs = append(errs, fmt.Errorf("ServiceMonitor %s: no endpoints", m.Name))
		}
		for _, e := range m.Spec.Endpoints {
			if !slices.Contains(ports, e.Port) {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: port %q is no port of the Service (%s)", m.Name, e.Port, strings.Join(ports, ", ")))
			}
			if code, err := MetricsStatus(e.Path); err != nil {
				errs = append(errs, err)
			} else if code != http.StatusOK {
				errs = append(errs, fmt.Errorf("ServiceMonitor %s: the server answers GET %s on its metrics port with %d, want 200", m.Name, e.Path, code))
			}
		}
	}
	return errs
}

// MetricsStatus asks the shipped server, on loopback, how its metrics port
// answers GET path.
func MetricsStatus(path string) (int, error) {
	srv, err := startServer(fortune.Catalogue[0])
	if err != nil {
		return 0, err
	}
	code := srv.status(srv.metricsURL, path)
	return code, srv.stop()
}

// liveServer is the shipped server under Run on two loopback ports.
type liveServer struct {
	*server.Server
	url, metricsURL string
	stop            func() error
}

// saturatedConns is the draw port's bound while the checks hold it.
const saturatedConns = 4

func startServer(f fortune.Fortune) (*liveServer, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ln, err := server.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		cancel()
		return nil, err
	}
	mln, err := server.Listen(ctx, "127.0.0.1:0")
	if err != nil {
		ln.Close()
		cancel()
		return nil, err
	}
	srv := server.New(server.Config{Fortune: f, Pod: "deploy-check", MaxConns: saturatedConns})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, mln) }()
	return &liveServer{
		Server:     srv,
		url:        "http://" + ln.Addr().String(),
		metricsURL: "http://" + mln.Addr().String(),
		stop:       func() error { cancel(); return <-done },
	}, nil
}

// saturate holds the draw port at its bound, as a flood of half-sent
// requests does, until release is called.
func (l *liveServer) saturate() (release func(), err error) {
	addr := strings.TrimPrefix(l.url, "http://")
	var held []net.Conn
	release = func() {
		for _, c := range held {
			c.Close()
		}
	}
	for range saturatedConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			release()
			return nil, err
		}
		held = append(held, c)
		c.Write([]byte("GET / HTTP/1.1\r\n"))
	}
	for deadline := time.Now().Add(5 * time.Second); l.status(l.url, server.HealthPath) != http.StatusServiceUnavailable; {
		if time.Now().After(deadline) {
			release()
			return nil, fmt.Errorf("the draw port on %s never reached its bound of %d connections", addr, saturatedConns)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return release, nil
}

// portURL is the server's URL for a container port: the metrics listener
// for the port named metrics, the draw port otherwise.
func (l *liveServer) portURL(c corev1.Container, port intstr.IntOrString) string {
	if cp, ok := resolvePort(c, port); ok && cp.Name == "metrics" {
		return l.metricsURL
	}
	return l.url
}

// status sends GET path and returns the response status, or 0 when no
// answer came.
func (l *liveServer) status(base, path string) int {
	client := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get(base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fortuneContainer returns the Deployment's only container.
func fortuneContainer(d appsv1.Deployment) (corev1.Container, error) {
	if n := len(d.Spec.Template.Spec.Containers); n != 1 {
		return corev1.Container{}, fmt.Errorf("Deployment %s: %d containers, want one", d.Name, n)
	}
	return d.Spec.Template.Spec.Containers[0], nil
}

// resolvePort finds the containerPort a Service or probe port refers to.
func resolvePort(c corev1.Container, port intstr.IntOrString) (corev1.ContainerPort, bool) {
	for _, p := range c.Ports {
		if (port.Type == intstr.String && port.StrVal == p.Name) ||
			(port.Type == intstr.Int && port.IntVal == p.ContainerPort) {
			return p, true
		}
	}
	return corev1.ContainerPort{}, false
}

func portNames(c corev1.Container) []string {
	var names []string
	for _, p := range c.Ports {
		names = append(names, fmt.Sprintf("%s=%d", p.Name, p.ContainerPort))
	}
	return names
}

func portString(p *intstr.IntOrString) string {
	if p == nil {
		return "(all)"
	}
	return p.String()
}

// flagValue finds --name=value or --name value in args, as Go's flag
// package reads them.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, true
		}
		if a == name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

func durationFlag(args []string, name string, def time.Duration) (time.Duration, error) {
	v, ok := flagValue(args, name)
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("--%s=%q: %w", name, v, err)
	}
	return d, nil
}
