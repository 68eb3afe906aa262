// Package audit draws many times from a load balancer and checks that the
// odds are what it promises: a chi-square goodness-of-fit test of the group
// shares against the expected weights, a test of uniformity across the
// backends within each group, and a chi-square test of independence on
// consecutive draws, which catches a balancer that cycles instead of
// choosing at random. A backend is whatever names itself in an answer:
// omikuji's JSON, a header, a JSON field or a regexp on the body.
//
// # The pipeline
//
// The package is cut by stage; data flows one way, and each file calls only
// into the files before it:
//
//	backend.go   an answer → an Outcome: the backend's name and the group it named (BackendSpec, identify)
//	options.go   how to draw (Options, Validate, FieldError)
//	expect.go    what is expected of every group and backend (GroupSpec, Expectation, Model)
//	client.go    one worker's draws, each ending as an Outcome
//	sampler.go   workers, rate and deadline: a stream of outcomes (sample), kept as a Sample by Draw
//	stats.go     the chi-square tests, used by the stages after it
//	sequential.go  the anytime-valid e-processes and confidence sequences
//	anytime.go   the three e-processes on a stream of draws (Anytime), and Replay over a Sample
//	monitor.go   Anytime for a watch: restarts after an alarm or an endpoint change (Monitor)
//	analyze.go   measure: a Sample against the Model, rows and tests (Report)
//	causes.go    likely causes, from the shape of a measured Report
//	verdict.go   the verdict and summary; Analyze = measure, then judge
//	text.go      the Report as text
//	html.go      the Report as one HTML page
//	until.go     drawing until the anytime-valid tests decide, or to a precision (DrawUntil)
//	watch.go     one sampler that runs until stopped, judged by a Monitor and window by window
//
// Errors about Options and Watch are *FieldError values that name the Go
// field, never a command-line flag; the Parse functions, which parse one
// flag's syntax each, quote that flag.
//
// # One backend, one identity
//
// A backend is identified by its name and the group its answer named, each
// answer for itself: an answer counts in the group it says. A name that
// answers as two groups (replicas sharing a host name) is two backends, and
// the Report lists it in SharedNames and says so in its summary.
//
// # The expectation model
//
// What an audit expects lives in one place, Model (expect.go), built by
// NewModel from a BackendSpec, a GroupSpec and an Expectation. The Model
// alone decides omikuji mode (Model.FortuneGroups, from fortuneMode) and what a
// zero Expectation means (the catalogue for omikuji's fortunes, uniform
// otherwise; a Watch's zero is uniform). measure asks it, and nothing else:
//
//   - groupOf: the group a backend counts in, per answer;
//   - groups: the groups shown whatever answers, with their weights
//     (expected groups that get no draw are rows with count 0);
//   - expects: whether a group was expected at all (one that was not, but
//     answered, is a row with weight 0: "came up although --expect gives it
//     weight 0");
//   - weight: a group's weight given the backends that weigh in it
//     (uniform: one per backend that answered, or per listed one);
//   - backendsWanted: how many backends must answer (uniform:N, or the
//     names of uniform:NAME,...);
//   - podsKnown: whether the groups' weights are their numbers of backends
//     (the catalogue's default), which the anytime-valid uniformity counts.
//
// Per-backend expectations plug in here and nowhere else. uniform:NAME,...
// lists the backends expected, each equally likely (what kube-proxy does
// over a node's endpoints): weighs says whether a backend is listed, silent
// gives each listed backend that never answered a backend row with count 0
// in the group its name gives (its own with omikuji's fortunes, which only
// an answer names), and groupOf puts a backend that answers unlisted in a
// group of its own with weight 0, which reads as unexpected as a weight-0
// group does. measure counts silent backends in the fit, the uniformity and
// the backend count, and fails the fit by name on an unlisted one; the
// anytime-valid tests see each unlisted draw through ObserveUnexpected, a
// draw of probability 0, so the fit rejects at once. Weights per pod (from
// a cluster's EndpointSlices, say) would be the same with a weight per name.
//
// The anytime-valid statistics consume the same stream: sample hands on
// every outcome as its draw finishes, with its place in start order, and
// inStartOrder turns that into the balancer's own order, one outcome at a
// time. Each incremental test keeps its state per outcome (the group from
// Model.groupOf, the backend as first seen) and never needs the whole
// Sample again: DrawUntil stops on them, Watch judges by them, and
// measure replays a finished Sample through them for the report.
package audit
