package audit

import (
	"bytes"
	"image/png"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/omikuji/omikuji/internal/browsertest"
)

// htmlSample is a round-robin over three backends (one of them named to
// break out of the page if anything were left unescaped) and two failures.
func htmlSample() Report {
	names := []string{"web-a", `<script>alert("x")</script>`, "web-c"}
	rec := newRecorder(302)
	for i := range 300 {
		rec.record(i, Outcome{Backend: names[i%3]})
	}
	rec.record(300, Outcome{Failure: "http_status_503", Err: `503 <img src="http://127.0.0.1:1/x.png">`})
	rec.record(301, Outcome{Failure: FailTimeout, Err: "i/o timeout"})
	spec := BackendSpec{Kind: KindHeader, Header: "X-Pod"}
	e, _ := ParseExpect("uniform:4", spec, GroupSpec{})
	return Analyze(rec.sample(), Audit{Options: Options{URL: "http://user:secret@127.0.0.1:8080/", Draws: 302, Concurrency: 1, Backend: spec}, Expect: e, Alpha: 0.001})
}

func TestHTMLIsSelfContainedAndEscaped(t *testing.T) {
	var b bytes.Buffer
	if err := htmlSample().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, banned := range []string{"<script", "<img", "<link", "@import", "url(", "secret"} {
		if strings.Contains(page, banned) {
			t.Errorf("the page contains %q", banned)
		}
	}
	for _, want := range []string{"&lt;script&gt;", "INCONSISTENT", "<svg", "http://***@127.0.0.1:8080/"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
}

// TestHTMLInABrowser renders the report in headless Chromium and checks
// what a person sees: the verdict, the charts, every draw of the strip, the
// hostile name shown as text, and not a single request besides the page.
func TestHTMLInABrowser(t *testing.T) {
	ctx := browsertest.Page(t, 960, 1400, htmlSample().WriteHTML)
	text := func(sel string) string {
		return browsertest.Eval[string](t, ctx, `document.querySelector("`+sel+`").innerText`)
	}
	count := func(js string) float64 { return browsertest.Eval[float64](t, ctx, js) }
	verdict, summary, tests, backends, failures := text("#verdict"), text("#summary"), text("#tests"), text("#backends"), text("#failures")
	stripCells, groups := count(`document.querySelectorAll("#strip rect").length`), count(`document.querySelectorAll("#shares g.group").length`)
	scripts := count(`document.scripts.length + document.images.length`)
	// Anything the page fetched besides itself: stylesheets, fonts, images.
	fetched := count(`performance.getEntriesByType("resource").length`)
	stripWidth := count(`document.querySelector("#strip").getBoundingClientRect().width`)
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if verdict != "INCONSISTENT" || !strings.Contains(summary, "each draw depends on the one before it") {
		t.Errorf("verdict %q, summary %q", verdict, summary)
	}
	for _, want := range []string{"FAILS", "independence", "fit", "uniform", "only 3 of the 4 expected backends answered"} {
		if !strings.Contains(tests, want) {
			t.Errorf("the tests table lacks %q: %q", want, tests)
		}
	}
	if !strings.Contains(backends, `<script>alert("x")</script>`) || !strings.Contains(failures, `<img src=`) || scripts != 0 {
		t.Errorf("hostile names are not shown as text (scripts+images %.0f): %q %q", scripts, backends, failures)
	}
	if stripCells != 302 || groups != 3 || stripWidth < 500 {
		t.Errorf("strip of %.0f cells, %.0f px wide; %.0f groups in the share chart", stripCells, stripWidth, groups)
	}
	if fetched != 0 {
		t.Errorf("the page fetched %.0f resources", fetched)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	colours := map[[3]uint32]bool{}
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y += 4 {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x += 4 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 12, g >> 12, b >> 12}] = true
		}
	}
	if len(colours) < 20 {
		t.Errorf("the screenshot shows %d colours: a blank page?", len(colours))
	}
}

// TestHTMLEscapesHostileNames puts markup in every place a response or the
// command line reaches the page: backend names, the group names taken from
// them, the header name, the URL and a failure example. Each must appear
// only escaped, in text and in attribute values alike.
func TestHTMLEscapesHostileNames(t *testing.T) {
	hostile := []string{`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `&`}
	rec := newRecorder(91)
	for i := range 90 {
		rec.record(i, Outcome{Backend: hostile[i%3]})
	}
	rec.record(90, Outcome{Failure: "http_status_500", Err: `500 "><img src=x onerror=alert(2)>`})
	spec := BackendSpec{Kind: KindHeader, Header: `X-<b>`}
	group, err := ParseGroup(`regex:^(.+)$`)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ParseExpect("uniform", spec, group)
	if err != nil {
		t.Fatal(err)
	}
	r := Analyze(rec.sample(), Audit{Options: Options{URL: `http://127.0.0.1:8080/?a=<i>&b="x"`, Draws: 91, Concurrency: 1, Backend: spec}, Group: group,
		Expect: e, Alpha: 0.001})
	if len(r.Groups) != 3 {
		t.Fatalf("%d groups, want one per hostile name: %+v", len(r.Groups), r.Groups)
	}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, banned := range []string{"<script", "<img", "<i>", "<b>", `"x"`, "alert(1)>", "alert(2)>", "alert(1)</", "&b="} {
		if strings.Contains(page, banned) {
			t.Errorf("the page contains %q unescaped", banned)
		}
	}
	for _, want := range []string{
		"<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>",   // backend name, as text
		"<td>&#34;&gt;&lt;img src=x onerror=alert(1)&gt;</td>", // group name in the backends table
		"<code>&amp;</code>", // a bare ampersand
		"<title>draw 2: &#34;&gt;&lt;img src=x onerror=alert(1)&gt;</title>", // strip cell
		"<code>500 &#34;&gt;&lt;img src=x onerror=alert(2)&gt;</code>",       // failure example
		"<code>http://127.0.0.1:8080/?a=&lt;i&gt;&amp;b=&#34;x&#34;</code>",  // URL
		"&lt;script&gt;alert(1)&lt;/script&gt;: ",                            // share bar's title
		"<code>header:X-&lt;b&gt;</code>",                                    // the --backend spec
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	// Every ampersand left starts one of the entities the page writes.
	for rest := page; ; {
		i := strings.IndexByte(rest, '&')
		if i < 0 {
			break
		}
		rest = rest[i:]
		ok := false
		for _, entity := range []string{"&lt;", "&gt;", "&amp;", "&#34;", "&#39;", "&#8195;"} {
			ok = ok || strings.HasPrefix(rest, entity)
		}
		if !ok {
			t.Errorf("unescaped ampersand at %q", rest[:min(len(rest), 20)])
		}
		rest = rest[1:]
	}
}
