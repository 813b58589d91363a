package serve

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// screenshotsDir is where TestBrowser saves the README's screenshots when
// PGLINK_SCREENSHOTS=1.
const screenshotsDir = "../../docs/img"

// newBrowser starts headless Chromium (Debian's chromium package, which
// make deps installs); as root it needs --no-sandbox.
func newBrowser(t *testing.T) context.Context {
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("no chromium: install it with apt-get install -y chromium (make deps does): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.Headless,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1200, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	return ctx
}

// until waits for a JavaScript condition on the page.
func until(t *testing.T, ctx context.Context, what, expr string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("the page: wait for %s (%s): %v", what, expr, err)
	}
}

func textOf(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("the page: text of %s: %v", sel, err)
	}
	return s
}

func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("the page: %s: %v", what, err)
	}
}

// screenshot saves the page as docs/img/name.png when PGLINK_SCREENSHOTS=1.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("PGLINK_SCREENSHOTS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(screenshotsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotsDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives the dashboard in headless Chromium: the overview
// shows the link's lag and throughput as a write load runs, the link's
// page its table and lag chart, and the wizard runs a planned failover to
// its results, which show again when the page is opened anew; then every
// row the load committed is on the target and both sides are the same.
func TestBrowser(t *testing.T) {
	f := newAPIFixture(t, "pw-b5k2")
	ctx := newBrowser(t)
	w := startItemWriter(t, f.src.URL("shop"))

	do(t, ctx, "open the dashboard", chromedp.Navigate(f.base+"/"))
	until(t, ctx, "the lag shown", `document.querySelector('tr[data-link="shop"] .c-lag').textContent.endsWith(" s") ||
		document.querySelector('tr[data-link="shop"] .c-lag').textContent.endsWith(" ms")`, 15*time.Second)
	until(t, ctx, "the throughput of the load shown", `parseFloat(document.querySelector('tr[data-link="shop"] .c-tput').textContent) > 0`, 15*time.Second)
	first := textOf(t, ctx, "#updated")
	until(t, ctx, "the overview updated", `document.querySelector('#updated').textContent !== `+jsString(first), 5*time.Second)
	if s := textOf(t, ctx, `tr[data-link="shop"] .c-state`); s != "replicating" {
		t.Errorf("the overview shows shop %q", s)
	}
	screenshot(t, ctx, "dashboard")

	do(t, ctx, "open the link's page", chromedp.Navigate(f.base+"/links/shop"))
	until(t, ctx, "the table's seeding and the lag chart", `document.querySelector('#tables tbody').textContent.includes('public.items') &&
		document.querySelector('#lag-chart svg polyline') !== null && document.querySelector('#history tbody').textContent.includes('seeded')`, 20*time.Second)
	screenshot(t, ctx, "link")

	do(t, ctx, "open the wizard and show the plan", chromedp.Navigate(f.base+"/links/shop/failover"), chromedp.Click(chromedp.CSS("#show-plan")),
		chromedp.WaitVisible(chromedp.CSS("#w-plan")))
	if steps := textOf(t, ctx, "#plan-steps"); !strings.Contains(steps, "ence") {
		t.Errorf("the plan shows no fence: %s", steps)
	}
	do(t, ctx, "type a wrong name", chromedp.SendKeys(chromedp.CSS("#confirm"), "sho"))
	if ok, _ := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector('#run').disabled`)); !ok {
		t.Error("the run button is enabled before the name is typed in full")
	}
	do(t, ctx, "confirm and run", chromedp.SendKeys(chromedp.CSS("#confirm"), "p"), chromedp.WaitEnabled(chromedp.CSS("#run")),
		chromedp.Click(chromedp.CSS("#run")), chromedp.WaitVisible(chromedp.CSS("#w-run")))
	until(t, ctx, "the failover's results", `!document.querySelector('#w-result').hidden`, 2*time.Minute)
	if head := textOf(t, ctx, "#result-head"); !strings.Contains(head, "done") {
		t.Fatalf("the results say %q: %s", head, textOf(t, ctx, "#result-facts"))
	}
	if facts := textOf(t, ctx, "#result-facts"); !strings.Contains(facts, "Write downtime") || strings.Contains(facts, "not measured") {
		t.Errorf("the results show no downtime: %s", facts)
	}
	screenshot(t, ctx, "failover")

	// The results show again on a page opened anew.
	do(t, ctx, "open the wizard again", chromedp.Navigate(f.base+"/links/shop/failover"))
	until(t, ctx, "the results shown again", `!document.querySelector('#w-result').hidden && document.querySelector('#result-head').textContent.includes('done')`, 10*time.Second)

	w.assertWritesOnTarget(t, f.dst, "shop")
	assertSame(t, f.src, f.dst, "shop", "shop")
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
