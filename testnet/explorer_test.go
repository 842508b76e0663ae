package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chromiumPath finds the Chromium `make deps` installs (Debian's chromium),
// or $UNFED_CHROMIUM.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("UNFED_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium in PATH: run `make deps` (it installs Debian's chromium) or set UNFED_CHROMIUM")
	return ""
}

// chromium runs headless Chromium on url with the extra args (--dump-dom
// or --screenshot=FILE) and returns its stdout. Its whole process group is
// killed if it outlives the deadline.
func chromium(t *testing.T, bin, url string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
		"--user-data-dir=" + t.TempDir(), "--window-size=1200,1600"}
	cmd := exec.CommandContext(ctx, bin, append(append(base, args...), url)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// TestExplorerInChromium serves a running testnet's explorer from an
// authority and renders it in headless Chromium: the rendered DOM shows
// every relay of the network and the model's layer coverage in both modes
// as the consensus has it, a relay's page names it, and a screenshot of the
// page is a real image.
func TestExplorerInChromium(t *testing.T) {
	bin := chromiumPath(t)
	n := startNetwork(t, Spec{Replicas: 1})
	relays := 0
	for _, node := range n.Nodes {
		if node.Kind == "relay" {
			relays++
		}
	}
	base := "http://" + n.Node("auth1").Listeners["dir"]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var data struct {
		Consensus struct{ Relays int }
		Models    []struct {
			ID                  string
			Layers              int
			AnonymousCovered    bool `json:"anonymous_covered"`
			ConfidentialCovered bool `json:"confidential_covered"`
		}
		Relays []struct{ Fingerprint, Nickname string }
	}
	body, err := getBody(ctx, base+"/?format=json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(body), &data); err != nil {
		t.Fatalf("explorer JSON: %v\n%s", err, body)
	}
	if data.Consensus.Relays != relays || len(data.Models) != 1 || !data.Models[0].AnonymousCovered || !data.Models[0].ConfidentialCovered {
		t.Fatalf("explorer JSON: %d relays (network has %d), models %+v", data.Consensus.Relays, relays, data.Models)
	}
	model := data.Models[0]

	dom := chromium(t, bin, base+"/", "--dump-dom")
	m := regexp.MustCompile(`id="relay-count">(\d+)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("rendered DOM has no relay count:\n%s", dom)
	}
	if got, _ := strconv.Atoi(m[1]); got != relays {
		t.Errorf("rendered relay count %d, the network has %d relays", got, relays)
	}
	if rows := strings.Count(dom, `<tr class="relay"`); rows != relays {
		t.Errorf("rendered %d relay rows, want %d", rows, relays)
	}
	fig := regexp.MustCompile(`<figure class="coverage"[^>]*data-model="` + model.ID + `"[^>]*>`).FindString(dom)
	if fig == "" || !strings.Contains(fig, `data-anonymous-covered="true"`) || !strings.Contains(fig, `data-confidential-covered="true"`) {
		t.Errorf("rendered coverage of %s: %q", model.ID, fig)
	}
	if cells := strings.Count(dom, `<rect class="layer"`); cells != 2*model.Layers {
		t.Errorf("rendered %d layer cells, want %d (2 modes × %d layers)", cells, 2*model.Layers, model.Layers)
	}
	if strings.Contains(dom, `data-relays="0"`) {
		t.Errorf("a layer renders as uncovered:\n%s", dom)
	}

	r := data.Relays[0]
	page := chromium(t, bin, base+"/relays/"+r.Fingerprint, "--dump-dom")
	if !strings.Contains(page, `data-fingerprint="`+r.Fingerprint+`"`) || !strings.Contains(page, "<h2>"+r.Nickname+"</h2>") {
		t.Errorf("relay page of %s:\n%s", r.Nickname, page)
	}

	// The screenshot, of a consensus that lists every relay: on a loaded
	// machine a 3 s period's probes can time out, and a consensus then
	// lists fewer relays (uncovered layers, no greens) for a period or two.
	// So each attempt waits for a full consensus and one whose page lacks
	// the colours is retried with the next; three in a row fail.
	sctx, scancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer scancel()
	var shotErr string
	for attempt := range 3 {
		full := time.Now().Add(time.Minute)
		for {
			if body, err := getBody(sctx, base+"/?format=json"); err == nil && json.Unmarshal([]byte(body), &data) == nil &&
				data.Consensus.Relays == relays && len(data.Models) == 1 && data.Models[0].AnonymousCovered && data.Models[0].ConfidentialCovered {
				break
			}
			if time.Now().After(full) {
				t.Fatalf("screenshot %d: no consensus listing all %d relays within a minute", attempt+1, relays)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if shotErr = screenshotColours(t, bin, base+"/models"); shotErr == "" {
			return
		}
		t.Logf("screenshot %d: %s", attempt+1, shotErr)
	}
	t.Error(shotErr)
}

// screenshotColours takes a screenshot of url and says what is wrong with
// it ("" when the coverage bar's greens are on screen, not a blank page).
func screenshotColours(t *testing.T, bin, url string) string {
	shot := filepath.Join(t.TempDir(), "explorer.png")
	chromium(t, bin, url, "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	b := img.Bounds()
	colours := map[string]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[fmt.Sprint(r>>8, g>>8, bl>>8)] = true
		}
	}
	if b.Dx() < 800 || len(colours) < 5 || !colours["46 125 50"] && !colours["127 179 106"] {
		return fmt.Sprintf("screenshot %v with %d colours, coverage colours missing", b, len(colours))
	}
	return ""
}
