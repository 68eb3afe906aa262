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
//	analyze.go   measure: a Sample against the Model, rows and tests (Report)
//	causes.go    likely causes, from the shape of a measured Report
//	verdict.go   the verdict and summary; Analyze = measure, then judge
//	text.go      the Report as text
//	html.go      the Report as one HTML page
//	watch.go     one sampler that runs until stopped, judged window by window
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
//   - weight: a group's weight given the backends that answered for it
//     (uniform: one per backend);
//   - backendsWanted: how many backends must answer (uniform:N).
//
// Per-backend expectations, such as weights per pod derived from a
// cluster's EndpointSlices, plug in as one more Expectation kind carrying a
// weight per backend name (zero for a pod expected to get no draws). Only
// the Model changes: groups sums the weights per group, a listed pod that
// never answers becomes a backend row with count 0, and a backend that
// answers unlisted gets weight 0 and reads as unexpected, as a weight-0
// group does today; Uniformity then compares each group's backends with
// their weights instead of equal shares.
//
// Sequential (anytime-valid) statistics plug into the same stream: sample
// hands on every outcome as its draw finishes, with its place in start
// order, and inStartOrder turns that into the balancer's own order, one
// outcome at a time, as Watch consumes it. An incremental test keeps its
// state per outcome (the group from Model.groupOf, the backend's identity
// as the recorder interns it) and never needs the whole Sample again.
package audit
