package directory

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// The explorer's HTML. Plots are inline SVG computed here (coverageBar,
// historyChart) so the pages need no script and no external asset.

// barCell is one layer of one mode in a coverage bar.
type barCell struct {
	X, Y, W, H int
	Fill       string
	Count      int
	Layer      int
	Mode       string
}

// barChart is a model's coverage bar: one row per circuit mode, one cell
// per layer, coloured by how many relays serve it.
type barChart struct {
	Width, Height int
	Cells         []barCell
	Labels        []chartLabel
}

type chartLabel struct {
	X, Y   int
	Text   string
	Anchor string
}

const (
	barCellW  = 28
	barRowH   = 22
	barLabelW = 104
)

func coverageFill(count, need int) string {
	switch {
	case count == 0:
		return "#c0392b" // uncovered
	case count < need:
		return "#e6a23c" // too thin for the mode
	case count < 2*need:
		return "#7fb36a"
	}
	return "#2e7d32"
}

func coverageBar(mc ModelCoverage) barChart {
	ch := barChart{Width: barLabelW + barCellW*max(mc.Layers, 1) + 4, Height: 2*barRowH + 22}
	rows := []struct {
		mode   string
		counts []int
		need   int
	}{{"anonymous", mc.Anonymous, 1}, {"confidential", mc.Confidential, 2}}
	for i, row := range rows {
		y := 4 + i*barRowH
		ch.Labels = append(ch.Labels, chartLabel{X: barLabelW - 6, Y: y + 15, Text: row.mode, Anchor: "end"})
		for l, n := range row.counts {
			ch.Cells = append(ch.Cells, barCell{X: barLabelW + l*barCellW, Y: y, W: barCellW - 2, H: barRowH - 4,
				Fill: coverageFill(n, row.need), Count: n, Layer: l, Mode: row.mode})
		}
	}
	for l := 0; l < mc.Layers; l++ {
		ch.Labels = append(ch.Labels, chartLabel{X: barLabelW + l*barCellW + barCellW/2 - 1, Y: 2*barRowH + 18, Text: fmt.Sprint(l), Anchor: "middle"})
	}
	return ch
}

// lineChart is the consensus history: relays per consensus.
type lineChart struct {
	Width, Height int
	Points        string // SVG polyline points
	Dots          []chartDot
	Labels        []chartLabel
}

type chartDot struct {
	X, Y  int
	Title string
}

func historyChart(points []HistoryPoint) lineChart {
	const w, h, left, bottom, top = 560, 140, 40, 24, 10
	ch := lineChart{Width: w, Height: h}
	if len(points) == 0 {
		return ch
	}
	most := 1
	for _, p := range points {
		most = max(most, p.Relays)
	}
	step := 0
	if len(points) > 1 {
		step = (w - left - 10) / (len(points) - 1)
	}
	var pts []string
	for i, p := range points {
		x := left + i*step
		y := top + (h-top-bottom)*(most-p.Relays)/most
		pts = append(pts, fmt.Sprintf("%d,%d", x, y))
		ch.Dots = append(ch.Dots, chartDot{X: x, Y: y, Title: fmt.Sprintf("%s: %d relays, %d signatures", fmtUTC(p.ValidAfter), p.Relays, p.Signatures)})
	}
	ch.Points = strings.Join(pts, " ")
	ch.Labels = []chartLabel{
		{X: left - 6, Y: top + 4, Text: fmt.Sprint(most), Anchor: "end"},
		{X: left - 6, Y: h - bottom + 4, Text: "0", Anchor: "end"},
		{X: left, Y: h - 6, Text: fmtUTC(points[0].ValidAfter), Anchor: "start"},
	}
	if len(points) > 1 {
		ch.Labels = append(ch.Labels, chartLabel{X: left + (len(points)-1)*step, Y: h - 6, Text: fmtUTC(points[len(points)-1].ValidAfter), Anchor: "end"})
	}
	return ch
}

func fmtUTC(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

func fmtUptime(s int64) string {
	if s <= 0 {
		return "—"
	}
	return (time.Duration(s) * time.Second).String()
}

var explorerTemplates = template.Must(template.New("explorer").Funcs(template.FuncMap{
	"bar":     coverageBar,
	"history": historyChart,
	"utc":     fmtUTC,
	"uptime":  fmtUptime,
	"join":    strings.Join,
	"short":   func(s string) string { return s[:min(len(s), 16)] },
}).Parse(explorerHTML))

const explorerHTML = `
{{define "head"}}<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.}} · UNFED explorer</title>
<style>
body{font:15px/1.45 system-ui,sans-serif;margin:0 auto;max-width:70em;padding:0 1em 3em;color:#222}
header{display:flex;gap:1.5em;align-items:baseline;border-bottom:1px solid #ddd;margin-bottom:1em}
header h1{font-size:1.2em} nav a{margin-right:1em}
table{border-collapse:collapse;width:100%;font-size:.92em} th,td{text-align:left;padding:.25em .5em;border-bottom:1px solid #eee;vertical-align:top}
code,.fp{font-family:ui-monospace,monospace;font-size:.9em} .muted{color:#777} .ok{color:#2e7d32} .bad{color:#c0392b}
figure{margin:.5em 0 1.5em} figcaption{font-size:.9em;color:#555} svg text{font:11px system-ui,sans-serif;fill:#333}
.flag{display:inline-block;background:#eef;border-radius:3px;padding:0 .3em;margin:0 .15em .15em 0;font-size:.85em}
</style></head><body>
<header><h1>UNFED explorer</h1><nav><a href="/">consensus</a><a href="/relays">relays</a><a href="/models">models</a></nav></header>
{{end}}

{{define "foot"}}<p class="muted">Served by authority {{.Authority}} <span class="fp">{{.Fingerprint}}</span> at {{utc .Now}} UTC.
The data of this page: <a href="?format=json">JSON</a>.</p></body></html>{{end}}

{{define "coverage"}}<figure class="coverage" id="coverage-{{.ID}}" data-model="{{.ID}}" data-layers="{{.Layers}}"
 data-anonymous-covered="{{.AnonymousCovered}}" data-confidential-covered="{{.ConfidentialCovered}}">
{{with bar .}}<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="layer coverage">
{{range .Labels}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>
{{end}}{{range .Cells}}<rect class="layer" data-mode="{{.Mode}}" data-layer="{{.Layer}}" data-relays="{{.Count}}" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" fill="{{.Fill}}"><title>{{.Mode}} layer {{.Layer}}: {{.Count}} relay(s)</title></rect>
{{end}}</svg>{{end}}
<figcaption>{{with .Name}}<strong class="model-name">{{.}}</strong> {{end}}<code>{{short .ID}}…</code> {{.Architecture}}, {{.Layers}} layers:
anonymous <span class="{{if .AnonymousCovered}}ok{{else}}bad{{end}}" data-mode-status="anonymous">{{if .AnonymousCovered}}covered{{else}}not covered{{end}}</span>,
confidential <span class="{{if .ConfidentialCovered}}ok{{else}}bad{{end}}" data-mode-status="confidential">{{if .ConfidentialCovered}}covered{{else}}not covered{{end}}</span>
({{.Dealers}} dealer(s)). Cells count usable relays per layer; a confidential layer needs two parties.</figcaption></figure>{{end}}

{{define "relaytable"}}<table id="relays"><thead><tr><th>relay</th><th>serves</th><th>flags</th><th>capacity</th><th>family</th><th>uptime</th></tr></thead><tbody>
{{range .}}<tr class="relay" data-fingerprint="{{.Fingerprint}}" data-kind="{{.Kind}}">
<td><a href="/relays/{{.Fingerprint}}">{{.Nickname}}</a><br><span class="fp muted">{{short .Fingerprint}}…</span></td>
<td>{{.Kind}}{{with .Layers}} layers [{{.First}},{{.Last}}){{end}}</td>
<td>{{range .Flags}}<span class="flag">{{.}}</span>{{end}}</td>
<td>{{.Sessions}} sessions, {{.TokensPerSec}} tok/s</td>
<td>{{len .Family}}</td><td>{{uptime .UptimeSeconds}}</td></tr>
{{end}}</tbody></table>{{end}}

{{define "overview"}}{{template "head" "Consensus"}}
{{with .Consensus}}<h2>Consensus of {{utc .ValidAfter}} UTC</h2>
<p><span id="relay-count">{{.Relays}}</span> relays; fresh until {{utc .FreshUntil}}, valid until {{utc .ValidUntil}} UTC; method {{.Method}};
signed by <span id="signature-count">{{.Signatures}}</span> authorities (needs {{.Threshold}}). Digest <code>{{.Digest}}</code>.</p>
{{else}}<h2>No consensus yet</h2><p id="relay-count" data-none="true">0</p>{{end}}
<h2>Authorities</h2><table id="authorities"><thead><tr><th>name</th><th>fingerprint</th><th>address</th><th>signed this consensus</th></tr></thead><tbody>
{{range .Authorities}}<tr><td>{{.Name}}</td><td class="fp">{{.Fingerprint}}</td><td>{{.Address}}</td><td>{{if .Signed}}<span class="ok">yes</span> ({{join .Algorithms ", "}}){{else}}<span class="bad">no</span>{{end}}</td></tr>
{{end}}</tbody></table>
<h2>Models</h2>{{range .Models}}{{template "coverage" .}}{{else}}<p>The catalog is empty.</p>{{end}}
<h2>History</h2>{{with history .History}}{{if .Points}}<figure id="history"><svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="relays per consensus">
<polyline points="{{.Points}}" fill="none" stroke="#3367d6" stroke-width="2"/>
{{range .Dots}}<circle cx="{{.X}}" cy="{{.Y}}" r="3" fill="#3367d6"><title>{{.Title}}</title></circle>{{end}}
{{range .Labels}}<text x="{{.X}}" y="{{.Y}}" text-anchor="{{.Anchor}}">{{.Text}}</text>{{end}}
</svg><figcaption>Relays in each consensus this authority published.</figcaption></figure>{{else}}<p>No history yet.</p>{{end}}{{end}}
<h2>Relays</h2>{{template "relaytable" .Relays}}
{{template "foot" .}}{{end}}

{{define "relays"}}{{template "head" "Relays"}}<h2><span id="relay-count">{{len .Relays}}</span> relays</h2>{{template "relaytable" .Relays}}{{template "foot" .}}{{end}}

{{define "models"}}{{template "head" "Models"}}<h2>Model catalog</h2>{{range .Models}}{{template "coverage" .}}
<p>Shards: {{range .Shards}}[{{.First}},{{.Last}}) {{end}}</p>{{else}}<p>The catalog is empty.</p>{{end}}{{template "foot" .}}{{end}}

{{define "relay"}}{{template "head" .Relay.Nickname}}{{with .Relay}}<h2>{{.Nickname}}</h2>
<table id="relay" data-fingerprint="{{.Fingerprint}}"><tbody>
<tr><th>fingerprint</th><td class="fp">{{.Fingerprint}}</td></tr>
<tr><th>serves</th><td>{{.Kind}}{{with .Model}} of <code>{{short .}}…</code>{{end}}{{with .Layers}} layers [{{.First}},{{.Last}}){{end}}</td></tr>
<tr><th>roles</th><td>{{join .Roles ", "}}</td></tr>
<tr><th>flags</th><td>{{range .Flags}}<span class="flag">{{.}}</span>{{end}}</td></tr>
<tr><th>capacity</th><td>{{.Sessions}} sessions, {{.TokensPerSec}} tokens/s; price {{.Price}} per token; weight {{.Weight}}</td></tr>
<tr><th>transports</th><td>{{join .Transports ", "}}</td></tr>
<tr><th>family</th><td>{{range .Family}}<a class="fp" href="/relays/{{.}}">{{short .}}…</a> {{else}}—{{end}}</td></tr>
<tr><th>uptime</th><td>{{uptime .UptimeSeconds}} (as this authority probed it)</td></tr>
<tr><th>published</th><td>{{utc .Published}} UTC; software {{.Software}}</td></tr>
<tr><th>descriptor</th><td><a href="/unfed/dir/v1/descriptor/{{.Fingerprint}}">signed descriptor</a></td></tr>
</tbody></table>{{end}}{{template "foot" .Overview}}{{end}}
`
