package deploy

import (
	"fmt"
	"slices"
	"strings"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/omikuji/omikuji/internal/fortune"
)

// checkDisruptionBudgets: every fortune of the catalogue has exactly one
// PodDisruptionBudget, over its own pods only, that lets a drain or a
// scale-down evict one pod at a time. maxUnavailable: 1 never blocks a
// one-replica fortune (its pod may go), yet keeps a drain from taking both
// middle-fortune pods at once and its odds to 0 % meanwhile; minAvailable: 1
// would block every drain of the node that runs great-fortune.
func checkDisruptionBudgets(kit *Kit) []error {
	var errs []error
	covered := map[string][]string{} // fortune → the budgets selecting its pods
	for _, b := range kit.DisruptionBudgets {
		where := "PodDisruptionBudget " + b.Name
		if b.Namespace != Namespace {
			errs = append(errs, fmt.Errorf("%s: in namespace %q, want %q", where, b.Namespace, Namespace))
		}
		errs = append(errs, checkBudgetLimits(where, b.Spec)...)
		sel, err := metav1.LabelSelectorAsSelector(b.Spec.Selector)
		if err != nil || sel.Empty() {
			errs = append(errs, fmt.Errorf("%s: invalid or empty selector (%v); want the matchLabels of one fortune's Deployment", where, err))
			continue
		}
		var selected []string
		for _, d := range kit.Deployments {
			if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				selected = append(selected, d.Name)
				covered[d.Name] = append(covered[d.Name], b.Name)
			}
		}
		if len(selected) != 1 || selected[0] != b.Name {
			errs = append(errs, fmt.Errorf("%s: selector %s selects the pods of [%s], want exactly the pods of fortune %s", where, sel, strings.Join(selected, " "), b.Name))
		}
	}
	for _, id := range fortune.IDs() {
		switch n := len(covered[id]); {
		case n == 0:
			errs = append(errs, fmt.Errorf("no PodDisruptionBudget covers fortune %s: a drain or a scale-down could evict all of its pods at once", id))
		case n > 1:
			slices.Sort(covered[id])
			errs = append(errs, fmt.Errorf("fortune %s is covered by %d PodDisruptionBudgets (%s); the eviction API refuses to evict a pod under more than one", id, n, strings.Join(covered[id], ", ")))
		}
	}
	return errs
}

func checkBudgetLimits(where string, spec policyv1.PodDisruptionBudgetSpec) []error {
	var errs []error
	if spec.MinAvailable != nil {
		errs = append(errs, fmt.Errorf("%s: minAvailable %s blocks every drain of a node that runs a one-replica fortune; use maxUnavailable: 1", where, spec.MinAvailable.String()))
	}
	if m := spec.MaxUnavailable; m == nil || m.String() != "1" {
		got := "unset"
		if m != nil {
			got = m.String()
		}
		errs = append(errs, fmt.Errorf("%s: maxUnavailable %s, want 1: one pod at a time, and never a blocked drain", where, got))
	}
	if p := spec.UnhealthyPodEvictionPolicy; p == nil || *p != policyv1.AlwaysAllow {
		errs = append(errs, fmt.Errorf("%s: unhealthyPodEvictionPolicy must be AlwaysAllow: a pod that is not ready is out of the draw already, and keeping it would stall a drain", where))
	}
	return errs
}
