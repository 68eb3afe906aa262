package kubeaudit

import (
	"bytes"
	"image/png"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/omikuji/omikuji/internal/browsertest"
	"github.com/omikuji/omikuji/internal/proxyrules"
)

// staleReport is a two-node audit in which n2 still reaches a pod that left
// the Service through its ClusterIP, and a backend with a hostile name
// through its NodePort: each pod stops at the first such draw.
func staleReport(t *testing.T) Report {
	s, pods := kit()
	retired := pods[5]
	var eps []proxyrules.Endpoint
	for _, ep := range s.Endpoints {
		if ep.Pod != retired {
			eps = append(eps, ep)
		}
	}
	s.Endpoints = eps
	r := Report{Namespace: "omikuji", Service: "omikuji", Port: "http (8080)", Image: "omikuji:dev", Draws: 2000, Alpha: 0.001, Seconds: 7.9}
	for i, node := range []string{"n1", "n2"} {
		zone := []string{"a", "b"}[i]
		plan := planFor(s, node, zone, nil)
		expected := plan.Expect.Pods()
		if node == "n1" {
			r.Nodes = append(r.Nodes, NodeReport{Node: node, Zone: zone, Paths: []PathReport{Judge(node, zone, plan, drawFrom(t, plan, uint64(i), 2000, expected), s, 0.001)}})
			continue
		}
		nodePort := plan
		nodePort.Path = proxyrules.NodePort
		r.Nodes = append(r.Nodes, NodeReport{Node: node, Zone: zone, Paths: []PathReport{
			// Seed 6: the first unexpected answer is the 17th draw.
			Judge(node, zone, plan, drawFrom(t, plan, 6, 2000, append(slices.Clone(expected), retired)), s, 0.001),
			Judge(node, zone, nodePort, drawFrom(t, nodePort, 6, 2000, append(slices.Clone(expected), `<script>alert("x")</script>`)), s, 0.001),
		}})
	}
	r.Skipped = []Skipped{{Node: "n3", Reason: "cordoned (spec.unschedulable)"}}
	r.finish()
	return r
}

// The page shows a panel per node with its verdict, the pod that should not
// answer, the hostile name as text, and fetches nothing.
func TestHTMLInABrowser(t *testing.T) {
	r := staleReport(t)
	if r.Verdict != Inconsistent || r.Nodes[0].Verdict != Consistent || r.Nodes[1].Verdict != Inconsistent {
		t.Fatalf("sample verdicts %s %s %s", r.Verdict, r.Nodes[0].Verdict, r.Nodes[1].Verdict)
	}
	ctx := browsertest.Page(t, 1280, 1100, r.WriteHTML)
	num := func(js string) float64 { return browsertest.Eval[float64](t, ctx, js) }
	str := func(js string) string { return browsertest.Eval[string](t, ctx, js) }
	panels, scripts := num(`document.querySelectorAll("section.node").length`), num(`document.scripts.length + document.images.length`)
	fetched := num(`performance.getEntriesByType("resource").length`)
	verdict := str(`document.querySelector("#verdict").textContent`)
	n2 := str(`document.querySelector('section.node[data-node="n2"]').innerText`)
	if panels != 2 || verdict != "INCONSISTENT" || scripts != 0 || fetched != 0 {
		t.Errorf("%v panels, verdict %q, %v scripts or images, %v fetched", panels, verdict, scripts, fetched)
	}
	for _, want := range []string{"INCONSISTENT", "small-fortune-7d9f8c6b5-00002", "its proxy rules are stale", `<script>alert("x")</script>`} {
		if !strings.Contains(n2, want) {
			t.Errorf("node n2's panel lacks %q:\n%s", want, n2)
		}
	}
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(shot)); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("OMIKUJI_SCREENSHOT"); keep != "" {
		if err := os.WriteFile(keep, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
