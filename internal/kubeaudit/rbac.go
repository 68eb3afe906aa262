package kubeaudit

// A Permission is one API call the audit makes: a verb on a resource
// ("pods/log" for a subresource) in an API group ("" is the core group).
type Permission struct {
	Group, Resource, Verb string
	ClusterWide           bool // the resource is not namespaced
}

// Permissions lists every call the audit makes, and so the whole RBAC it
// needs; deploy/rbac/kubectl-omikuji.yaml grants exactly these (a test in
// deploy/ compares them, and one here records the calls).
var Permissions = []Permission{
	{"", "services", "get", false},
	{"discovery.k8s.io", "endpointslices", "list", false},
	{"", "pods", "list", false},
	{"", "pods", "get", false},
	{"", "pods", "create", false},
	{"", "pods", "delete", false},
	{"", "pods/log", "get", false},
	{"", "nodes", "list", true},
	{"", "namespaces", "get", true},
}
