package directory

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/unfed/unfed/relay/daemon"
)

// Entry points of `unfed consensus show` and `unfed descriptor show`.

// ConsensusShow implements `unfed consensus show [--verify] [--authorities
// FILE | --testnet DIR] [--at TIME] [FILE|URL]`. It prints the consensus's
// times, parameters, models, relays and signatures. Without trusted
// authorities the signatures are listed but not checked, and the output says
// so; with them the consensus is verified and an invalid one is an error.
// The authorities come from --authorities (a file of NAME HOST:PORT
// IDENTITY-BASE64 [MLDSA65-BASE64] lines, or any UNFED configuration file
// with an authorities list) or --testnet (a testnet directory's
// configuration); with --testnet and no FILE|URL the consensus is fetched
// from the testnet's authorities (showverify.go).
func ConsensusShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("consensus show", "[flags] [FILE|URL]", stderr)
	authFile := fs.String("authorities", "", "trusted authorities: a file of NAME HOST:PORT IDENTITY [MLDSA65] lines, or a daemon config `FILE` with an authorities list")
	testnetDir := fs.String("testnet", "", "trust the authorities of the testnet in `DIR` (and fetch from them when no FILE|URL is given)")
	verify := fs.Bool("verify", false, "fail unless the signatures verify against --authorities or --testnet")
	at := fs.String("at", "", "verify as of this UTC time, \"YYYY-MM-DD HH:MM:SS\" (default now)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	now := time.Now()
	if *at != "" {
		var err error
		if now, err = parseTime(*at); err != nil {
			return fmt.Errorf("directory: --at: %w", err)
		}
	}
	if *authFile != "" && *testnetDir != "" {
		return errors.New("directory: give --authorities or --testnet, not both")
	}
	var set AuthoritySet
	trusted := *authFile != "" || *testnetDir != ""
	var err error
	switch {
	case *authFile != "":
		set, err = readAuthorityFile(*authFile)
	case *testnetDir != "":
		set, err = testnetAuthorities(*testnetDir)
	case *verify:
		err = errors.New("directory: --verify needs --authorities FILE or --testnet DIR")
	}
	if err != nil {
		return err
	}
	var raw []byte
	switch {
	case fs.NArg() == 1:
		raw, err = readSource(ctx, fs.Arg(0), PathConsensus, MaxConsensusSize)
	case fs.NArg() == 0 && *testnetDir != "":
		raw, err = fetchFromAuthorities(ctx, set)
	default:
		return errors.New("usage: unfed consensus show [--verify] [--authorities FILE | --testnet DIR] [--at TIME] FILE|URL")
	}
	if err != nil {
		return err
	}
	u, err := ParseConsensus(raw)
	if err != nil {
		return err
	}
	c := u.Unchecked()
	status := "signatures NOT verified (no --authorities given)"
	if trusted {
		if c, err = u.Verify(set, now); err != nil {
			return err
		}
		status = fmt.Sprintf("verified: signed by at least %d of %d configured authorities, current", set.Threshold(), len(set.Authorities))
	}
	printConsensus(stdout, c, status)
	return nil
}

func printConsensus(w io.Writer, c *Consensus, status string) {
	fmt.Fprintf(w, "consensus method %d, %s\n", c.Method, status)
	fmt.Fprintf(w, "valid-after  %s\nfresh-until  %s\nvalid-until  %s\n", fmtTime(c.ValidAfter), fmtTime(c.FreshUntil), fmtTime(c.ValidUntil))
	var ps []string
	for _, k := range slices.Sorted(maps.Keys(c.Params)) {
		ps = append(ps, fmt.Sprintf("%s=%d", k, c.Params[k]))
	}
	fmt.Fprintf(w, "params       %s\n", strings.Join(ps, " "))
	fmt.Fprintf(w, "authorities  %d voted, %d signatures\n", len(c.Authorities), len(c.Signatures))
	for _, a := range c.Authorities {
		fmt.Fprintf(w, "  %-12s %s %s\n", a.Name, a.Fingerprint, a.Address)
	}
	fmt.Fprintf(w, "models       %d\n", len(c.Models))
	for _, m := range c.Models {
		var sh []string
		for _, s := range m.Shards {
			sh = append(sh, fmt.Sprintf("[%d,%d)", s.First, s.Last))
		}
		fmt.Fprintf(w, "  %s %s layers=%d shards=%s root=%s name=%s\n", m.ID, m.Architecture, m.Layers, strings.Join(sh, ","), m.TensorHashRoot, orDash(m.Name))
	}
	fmt.Fprintf(w, "relays       %d\n", len(c.Relays))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FINGERPRINT\tNICKNAME\tFLAGS\tROLES\tMODEL\tTRANSPORTS\tTOK/S\tPRICE\tWEIGHT")
	unmeasured := false
	for _, r := range c.Relays {
		var what []string
		if ci := r.Compute; ci != nil {
			what = append(what, fmt.Sprintf("%s[%d,%d)", ci.Model, ci.Layers.First, ci.Layers.Last))
		}
		if m := r.MPC; m != nil {
			what = append(what, fmt.Sprintf("mpc:%s[%d,%d)", m.Model, m.Layers.First, m.Layers.Last))
		}
		if dl := r.Dealer; dl != nil {
			what = append(what, "dealer:"+dl.Model)
		}
		model := orDash(strings.Join(what, " "))
		var ts []string
		for _, t := range r.Transports {
			ts = append(ts, t.Name+"="+t.Addr)
		}
		weight := "-"
		if r.Weight > 0 {
			weight = fmtUint(r.Weight)
			if r.Unmeasured {
				weight += "*"
				unmeasured = true
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Fingerprint, orDash(r.Nickname), joinFlags(r.Flags),
			strings.Join(rolesArgs(r.Roles), ","), model, strings.Join(ts, " "), r.Capacity.TokensPerSec, r.PricePerToken, weight)
	}
	tw.Flush()
	if unmeasured {
		fmt.Fprintln(w, "  * unmeasured: too few authorities measured the relay; it has the default weight")
	}
}

// DescriptorShow implements `unfed descriptor show FILE|URL`: it verifies the
// descriptor's signature and link certificate (freshness is reported, not
// required) and prints its fields.
func DescriptorShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("descriptor show", "FILE|URL", stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: unfed descriptor show FILE|URL")
	}
	raw, err := readSource(ctx, fs.Arg(0), "", MaxDescriptorSize)
	if err != nil {
		return err
	}
	d, err := parseDescriptor(raw, time.Now(), false)
	if err != nil {
		return err
	}
	fresh := "fresh"
	if err := d.validate(time.Now(), true); err != nil {
		fresh = "NOT acceptable now: " + err.Error()
	}
	w := stdout
	fmt.Fprintf(w, "fingerprint  %s (signature valid)\n", d.Fingerprint())
	fmt.Fprintf(w, "nickname     %s\npublished    %s (%s)\n", orDash(d.Nickname), fmtTime(d.Published), fresh)
	fmt.Fprintf(w, "roles        %s\n", strings.Join(rolesArgs(d.Roles), " "))
	for _, t := range d.Transports {
		fmt.Fprintf(w, "transport    %s %s %s\n", t.Name, t.Addr, strings.Join(t.Args, " "))
	}
	if c := d.Compute; c != nil {
		fmt.Fprintf(w, "compute      %s layers [%d,%d)\n", c.Model, c.Layers.First, c.Layers.Last)
	}
	if m := d.MPC; m != nil {
		fmt.Fprintf(w, "mpc          %s layers [%d,%d) (confidential stage party)\n", m.Model, m.Layers.First, m.Layers.Last)
	}
	if dl := d.Dealer; dl != nil {
		fmt.Fprintf(w, "dealer       %s (confidential stage dealer)\n", dl.Model)
	}
	fmt.Fprintf(w, "capacity     %d sessions, %d tokens/s, price %d per token\n", d.Capacity.Sessions, d.Capacity.TokensPerSec, d.PricePerToken)
	fmt.Fprintf(w, "onion key    %s (X-Wing %d bytes)", fmtB64(d.Onion.X25519[:]), len(d.Onion.XWing))
	if d.PrevOnion != nil {
		fmt.Fprintf(w, ", previous %s", fmtB64(d.PrevOnion.X25519[:]))
	}
	fmt.Fprintf(w, "\nlink key     %s\n", fmtB64(d.LinkKey[:]))
	if len(d.Family) > 0 {
		fmt.Fprintf(w, "family       %s\n", strings.Join(fpArgs(d.Family), " "))
	}
	fmt.Fprintf(w, "software     %s\ncontact      %s\n", orDash(d.Software), orDash(d.Contact))
	return nil
}

// readSource reads a file, or GETs an http(s) URL (appending path when the
// URL has none).
func readSource(ctx context.Context, src, path string, limit int64) ([]byte, error) {
	if strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") {
		if path != "" && strings.Count(src, "/") == 2 {
			src += path
		}
		return httpGet(ctx, &http.Client{Timeout: 30 * time.Second}, src, limit)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("directory: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("directory: reading %s: %w", src, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("directory: %s is larger than %d bytes", src, limit)
	}
	return b, nil
}

// readAuthorityFile reads trusted authorities from a file of authority lines
// or a configuration file (parseAuthorities).
func readAuthorityFile(path string) (AuthoritySet, error) {
	b, err := readSource(context.Background(), path, "", 1<<20)
	if err != nil {
		return AuthoritySet{}, err
	}
	return parseAuthorities(path, b)
}

// parseAuthorityLines reads "NAME HOST:PORT IDENTITY [MLDSA65]" lines; blank
// lines and lines starting with '#' are skipped.
func parseAuthorityLines(path string, b []byte) (AuthoritySet, error) {
	var entries []AuthorityEntry
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 3 || len(f) > 4 {
			return AuthoritySet{}, fmt.Errorf("directory: %s line %d: want NAME HOST:PORT IDENTITY [MLDSA65]", path, i+1)
		}
		e := AuthorityEntry{Name: f[0], Address: f[1], Identity: f[2]}
		if len(f) == 4 {
			e.MLDSA65 = f[3]
		}
		entries = append(entries, e)
	}
	return NewAuthoritySet(entries, false)
}

func joinFlags(fs []Flag) string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = string(f)
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
