package audit

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// WriteLines writes one machine-readable line per role and one per role and
// baseline:
//
//	audit mode=M role=R recovered=N total=T generated=G/GT layers=F-L vectors=V requests=Q relays=a,b
//	audit mode=M role=R baseline=B recovered=N total=T generated=G/GT
func (r *Report) WriteLines(w io.Writer) error {
	for _, res := range r.Results {
		relays := strings.Join(res.Relays, ",")
		if relays == "" {
			relays = "-"
		}
		if _, err := fmt.Fprintf(w, "audit mode=%s role=%s recovered=%d total=%d generated=%d/%d layers=%s vectors=%d requests=%d relays=%s\n",
			r.Mode, res.Role, res.Recovered, res.Total, res.GenRecovered, res.GenTotal, res.layers(), res.Vectors, res.Requests, relays); err != nil {
			return err
		}
		for _, b := range Baselines {
			t := res.Baseline[b]
			if _, err := fmt.Fprintf(w, "audit mode=%s role=%s baseline=%s recovered=%d total=%d generated=%d/%d\n",
				r.Mode, res.Role, b, t.Recovered, t.Total, t.GenRecovered, t.GenTotal); err != nil {
				return err
			}
		}
	}
	return nil
}

func (res *Result) layers() string {
	if res.Kind == "guard" {
		return "-"
	}
	return fmt.Sprintf("%d-%d", res.First, res.Last)
}

func pct(n, d int) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d (%.1f%%)", n, d, 100*float64(n)/float64(d))
}

// WriteTable writes the human summary: per role what it recovered, the
// baselines, the best single source and what it received.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "\nPrivacy audit, %s circuits: %d requests; a guess is right by chance with probability 1/%d = %.2f%%.\n",
		r.Mode, r.Requests, r.Vocab, 100/float64(max(1, r.Vocab)))
	fmt.Fprintln(w, "recovered: prompt tokens (BOS excluded) the relay's one guess per position got right;")
	fmt.Fprintln(w, "generated: generated tokens it learned; baselines: the same attacks on random data of the same shape;")
	fmt.Fprintln(w, "best single source: the one kind of vector and attack that got most prompt tokens, picked in hindsight.")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "role\tkind\tlayers\trelays\tprompt recovered\tgenerated\tvectors\tbaseline uniform\tbaseline gaussian\tbest single source")
	for _, res := range r.Results {
		best := "-"
		if res.Best != "" {
			best = fmt.Sprintf("%s %d (uniform baseline: %d)", res.Best, res.BestCount, res.Baseline[BaselineUniform].BestCount)
		}
		relays := strings.Join(res.Relays, ",")
		if relays == "" {
			relays = "-"
		}
		u, g := res.Baseline[BaselineUniform], res.Baseline[BaselineGaussian]
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\t%s\n", res.Role, res.Kind, res.layers(), relays,
			pct(res.Recovered, res.Total), res.GenRecovered, res.GenTotal, res.Vectors,
			pct(u.Recovered, u.Total), pct(g.Recovered, g.Total), best)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nWhat each role received and sent (records by type):")
	for _, res := range r.Results {
		var ks []string
		for k := range res.Messages {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		var parts []string
		for _, k := range ks {
			parts = append(parts, fmt.Sprintf("%s %d", k, res.Messages[k]))
		}
		if len(parts) == 0 {
			parts = []string{"no compute or edge message in the clear"}
		}
		if res.Undecodable > 0 {
			parts = append(parts, fmt.Sprintf("undecodable %d", res.Undecodable))
		}
		fmt.Fprintf(w, "  %-6s %s\n", res.Role, strings.Join(parts, ", "))
	}
	return nil
}
