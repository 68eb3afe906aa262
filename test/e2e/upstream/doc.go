// Package upstream holds no code. Its go.mod pins the Kubernetes release the
// e2e cluster is built from (k8s.io/kubernetes with every k8s.io staging
// module replaced by the matching published version) and lists the five
// components as tools, so that heavy graph stays out of the e2e module and
// the product's go.mod. The harness builds them from this directory and
// caches the binaries keyed on this module's go.sum.
package upstream
