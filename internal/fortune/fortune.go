// Package fortune is the catalogue: the four fortunes, their labels and the
// replica counts that make the default odds. Every other part of omikuji —
// the server, local mode, the audit and the Kubernetes manifests' tests —
// takes these facts from here.
package fortune

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// A Fortune is one kind of slip. Its ID names the Deployment that serves it.
type Fortune struct {
	ID       string // "great-fortune": flags, Deployment names, JSON
	Label    string // "大吉": what the slip says
	Reading  string // "daikichi": the label in rōmaji
	Gloss    string // "Great blessing": an English gloss
	Replicas int    // default replica count; replicas / total = odds
}

// Catalogue lists every fortune, best first. The default replicas 1/2/6/1
// give the odds 10/20/60/10 %.
var Catalogue = []Fortune{
	{ID: "great-fortune", Label: "大吉", Reading: "daikichi", Gloss: "Great blessing", Replicas: 1},
	{ID: "middle-fortune", Label: "中吉", Reading: "chūkichi", Gloss: "Middle blessing", Replicas: 2},
	{ID: "small-fortune", Label: "小吉", Reading: "shōkichi", Gloss: "Small blessing", Replicas: 6},
	{ID: "misfortune", Label: "凶", Reading: "kyō", Gloss: "Misfortune", Replicas: 1},
}

// IDs returns the fortune IDs in catalogue order.
func IDs() []string {
	ids := make([]string, len(Catalogue))
	for i, f := range Catalogue {
		ids[i] = f.ID
	}
	return ids
}

// Lookup returns the fortune with the given ID. The error names the valid IDs.
func Lookup(id string) (Fortune, error) {
	for _, f := range Catalogue {
		if f.ID == id {
			return f, nil
		}
	}
	if id == "" {
		return Fortune{}, fmt.Errorf("no fortune given; valid fortunes: %s", strings.Join(IDs(), ", "))
	}
	return Fortune{}, fmt.Errorf("unknown fortune %q; valid fortunes: %s", id, strings.Join(IDs(), ", "))
}

// Counts maps fortune IDs to a whole number: replicas, weights or draws.
type Counts map[string]int

// DefaultReplicas returns the catalogue's replica counts.
func DefaultReplicas() Counts {
	c := make(Counts, len(Catalogue))
	for _, f := range Catalogue {
		c[f.ID] = f.Replicas
	}
	return c
}

// Total is the sum of all counts.
func (c Counts) Total() int {
	t := 0
	for _, n := range c {
		t += n
	}
	return t
}

// String formats counts in catalogue order as "id=n,...", the form ParseCounts reads.
func (c Counts) String() string {
	parts := make([]string, 0, len(c))
	for _, id := range c.sortedIDs() {
		parts = append(parts, fmt.Sprintf("%s=%d", id, c[id]))
	}
	return strings.Join(parts, ",")
}

// sortedIDs lists the IDs present in c, in catalogue order.
func (c Counts) sortedIDs() []string {
	ids := make([]string, 0, len(c))
	for id := range c {
		ids = append(ids, id)
	}
	order := make(map[string]int, len(Catalogue))
	for i, f := range Catalogue {
		order[f.ID] = i
	}
	sort.Slice(ids, func(i, j int) bool { return order[ids[i]] < order[ids[j]] })
	return ids
}

// ParseCounts reads a list such as "great-fortune=1,middle-fortune=2".
// Fortunes left out count 0; at least one count must be positive. Unknown or
// repeated IDs, negative or non-numeric counts are errors.
func ParseCounts(s string) (Counts, error) {
	c := make(Counts, len(Catalogue))
	for _, f := range Catalogue {
		c[f.ID] = 0
	}
	seen := make(map[string]bool)
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty list; want id=n,... with ids from: %s", strings.Join(IDs(), ", "))
	}
	for _, item := range strings.Split(s, ",") {
		id, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		id, value = strings.TrimSpace(id), strings.TrimSpace(value)
		if !ok {
			return nil, fmt.Errorf("%q: want id=n", item)
		}
		if _, err := Lookup(id); err != nil {
			return nil, err
		}
		if seen[id] {
			return nil, fmt.Errorf("fortune %q given twice", id)
		}
		seen[id] = true
		n, err := strconv.Atoi(value)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s=%q: want a whole number ≥ 0", id, value)
		}
		if n > MaxCount {
			return nil, fmt.Errorf("%s=%d: at most %d", id, n, MaxCount)
		}
		c[id] = n
	}
	if c.Total() == 0 {
		return nil, fmt.Errorf("%q: at least one count must be positive", s)
	}
	return c, nil
}

// MaxCount bounds one count so that sums cannot overflow and a typo such as
// "small-fortune=6000000" is not taken as 6 million local replicas.
const MaxCount = 1_000_000
