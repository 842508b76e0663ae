package sharechain

// The `unfed wallet ...` and `unfed sharechain ...` commands (spec 12 §9).
// Each is a daemon.Command; cmd/unfed only registers them.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unfed/unfed/relay/daemon"
	"github.com/unfed/unfed/relay/keys"
	"github.com/unfed/unfed/relay/obs"
)

// DefaultNetwork is the network name of the local testnet's chain.
const DefaultNetwork = "unfed-testnet"

func nowEpoch() uint64 { return DefaultParams("").Epoch(uint64(time.Now().UnixMilli())) }

func openFlag(fs *flag.FlagSet, args []string, dataDir *string) (*DB, error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("sharechain: unexpected arguments %q", fs.Args())
	}
	if *dataDir == "" {
		return nil, errors.New("sharechain: --data-dir is required")
	}
	return OpenDB(*dataDir)
}

// WalletBalance implements `unfed wallet balance --data-dir DIR`.
func WalletBalance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("wallet balance", "--data-dir DIR", stderr)
	dir := fs.String("data-dir", "", "the client's data `DIR`")
	db, err := openFlag(fs, args, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	b, err := NewWallet(db).Balance(ctx, nowEpoch())
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "balance %d units\n", b.Total)
	denoms := make([]uint64, 0, len(b.ByDenom))
	for d := range b.ByDenom {
		denoms = append(denoms, d)
	}
	sort.Slice(denoms, func(i, j int) bool { return denoms[i] > denoms[j] })
	for _, d := range denoms {
		fmt.Fprintf(stdout, "  %d x %d\n", b.ByDenom[d], d)
	}
	if b.Expired > 0 {
		fmt.Fprintf(stdout, "expired credits %d\n", b.Expired)
	}
	return nil
}

// WalletRequest implements `unfed wallet request --data-dir DIR --mint URL
// --amount N [--deposit REF]`: credits worth N from the mint's keys of the
// current epoch, largest denominations first.
func WalletRequest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("wallet request", "--data-dir DIR --mint URL --amount N", stderr)
	dir := fs.String("data-dir", "", "the client's data `DIR`")
	mintURL := fs.String("mint", "", "the mint's base `URL`, e.g. http://127.0.0.1:7070")
	amount := fs.Uint64("amount", 0, "units to request")
	deposit := fs.String("deposit", "faucet", "the deposit `REF`erence the mint issues against")
	db, err := openFlag(fs, args, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if *mintURL == "" || *amount == 0 {
		return errors.New("sharechain: --mint and a positive --amount are required")
	}
	if *amount > MaxIssue*1000 {
		return fmt.Errorf("sharechain: --amount %d is more than one request may carry", *amount)
	}
	is := HTTPIssuer{URL: *mintURL, Client: &http.Client{Timeout: 30 * time.Second}}
	pubs, err := is.PublicKeys(ctx)
	if err != nil {
		return err
	}
	epoch := nowEpoch()
	var cur []MintPublicKey
	for _, k := range pubs {
		if k.Epoch == epoch {
			cur = append(cur, k)
		}
	}
	sort.Slice(cur, func(i, j int) bool { return cur[i].Denom > cur[j].Denom })
	if len(cur) == 0 || cur[len(cur)-1].Denom != 1 {
		return fmt.Errorf("sharechain: the mint has no key of denomination 1 for epoch %d", epoch)
	}
	if err := db.SaveKeys(ctx, cur); err != nil {
		return err
	}
	w := NewWallet(db)
	rest, got := *amount, 0
	for _, k := range cur {
		for n := rest / k.Denom; n > 0; {
			c := min(n, MaxIssue)
			cs, err := w.Request(ctx, is, *deposit, k, int(c))
			if err != nil {
				return err
			}
			got += len(cs)
			n -= c
			rest -= c * k.Denom
		}
	}
	fmt.Fprintf(stdout, "received %d units in %d credits (epoch %d)\n", *amount, got, epoch)
	return nil
}

// Faucet implements `unfed sharechain faucet --data-dir DIR --listen ADDR`:
// a testnet mint with fresh keys for the current and the next epoch.
func Faucet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("sharechain faucet", "--data-dir DIR [--listen ADDR]", stderr)
	dir := fs.String("data-dir", "", "the mint's data `DIR` (issuance log)")
	listen := fs.String("listen", "127.0.0.1:0", "HTTP listen `ADDR`")
	denoms := fs.String("denoms", "1,10,100,1000", "comma-separated denominations")
	db, err := openFlag(fs, args, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	var ds []uint64
	for _, f := range strings.Split(*denoms, ",") {
		d, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil || d == 0 {
			return fmt.Errorf("sharechain: bad denomination %q", f)
		}
		ds = append(ds, d)
	}
	if len(ds) > 16 {
		return errors.New("sharechain: at most 16 denominations")
	}
	m, err := faucetMint(db, filepath.Join(*dir, MintKeysFile), nowEpoch(), ds)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sharechain: %w", err)
	}
	srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
	obs.AnnounceListener(stdout, "mint", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return fmt.Errorf("sharechain: faucet: %w", err)
	}
}

// MintKeysFile holds a faucet's private keys in its data directory.
const MintKeysFile = "mint-keys.pem"

// faucetMint loads the faucet's keys from path when they cover epoch, and
// otherwise makes keys for epoch and epoch+1 and writes them there, so a
// restarted faucet keeps signing with the keys relays already know.
func faucetMint(db *DB, path string, epoch uint64, denoms []uint64) (*Mint, error) {
	if m, err := LoadMint(db, path); err == nil {
		pubs, _ := m.PublicKeys(context.Background())
		for _, k := range pubs {
			if k.Epoch == epoch {
				return m, nil
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	m, err := NewMint(db, epoch, denoms)
	if err != nil {
		return nil, err
	}
	next, err := NewMint(db, epoch+1, denoms)
	if err != nil {
		return nil, err
	}
	for id, k := range next.keys {
		m.keys[id] = k
	}
	return m, m.WriteKeys(path)
}

// peerList is a repeatable --peer flag.
type peerList []string

func (p *peerList) String() string { return strings.Join(*p, ",") }

func (p *peerList) Set(v string) error {
	if !strings.HasPrefix(v, "http://") && !strings.HasPrefix(v, "https://") {
		return fmt.Errorf("peer %q is not an http(s) URL", v)
	}
	if len(*p) >= 16 {
		return errors.New("at most 16 peers")
	}
	*p = append(*p, v)
	return nil
}

// paramFlags adds the chain parameters a testnet may change (spec 12 §6.1;
// a relay or authority takes them from the consensus) and returns their
// reader, which names the network the store holds when --network is not
// given.
func paramFlags(fs *flag.FlagSet) func(context.Context, *DB) (Params, error) {
	network := fs.String("network", "", "the chain's network `NAME` (default: the store's, else "+DefaultNetwork+")")
	def := DefaultParams("")
	window := fs.Int("window", def.Window, "PPLNS window in `BLOCKS`")
	maturity := fs.Int("maturity", def.Maturity, "verification depth in `BLOCKS` before a block is paid")
	return func(ctx context.Context, db *DB) (Params, error) {
		name := *network
		if name == "" {
			var err error
			if name, err = db.Network(ctx); err != nil {
				return Params{}, err
			}
		}
		if name == "" {
			name = DefaultNetwork
		}
		p := DefaultParams(name)
		p.Window, p.Maturity = *window, *maturity
		return p, nil
	}
}

// loadChain opens a node's stored chain with the mint keys it recorded.
func loadChain(ctx context.Context, name, synopsis string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Chain, *DB, *flag.FlagSet, error) {
	fs := daemon.NewFlagSet(name, synopsis, stderr)
	dir := fs.String("data-dir", "", "the node's data `DIR`")
	params := paramFlags(fs)
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	if *dir == "" {
		return nil, nil, nil, errors.New("sharechain: --data-dir is required")
	}
	db, err := OpenDB(*dir)
	if err != nil {
		return nil, nil, nil, err
	}
	ks, err := db.LoadKeys(ctx)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	p, err := params(ctx, db)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	ch, err := NewChain(ctx, p, ks, db)
	if err != nil {
		db.Close()
		return nil, nil, nil, err
	}
	return ch, db, fs, nil
}

func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return fmt.Errorf("sharechain: unexpected arguments %q", fs.Args())
	}
	return nil
}

// Status implements `unfed sharechain status --data-dir DIR`.
func Status(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ch, db, fs, err := loadChain(ctx, "sharechain status", "--data-dir DIR", args, stderr, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	spent, err := db.SpentCount(ctx)
	if err != nil {
		return err
	}
	p := ch.Params()
	g := p.Genesis()
	fmt.Fprintf(stdout, "network %s genesis %x\n", p.Network, g)
	fmt.Fprintf(stdout, "blocks %d (forks included)\n", ch.Len())
	if tip := ch.Tip(); tip != nil {
		id := tip.ID()
		fmt.Fprintf(stdout, "tip height %d id %x score %d time %s\n", tip.Height, id, ch.TipScore(),
			time.UnixMilli(int64(tip.TimeMs)).UTC().Format(time.DateTime))
	} else {
		fmt.Fprintln(stdout, "tip none")
	}
	s := ch.Payouts()
	fmt.Fprintf(stdout, "matured %d value %d paid %d carried %d relays %d\n", s.Matured, s.Value, s.Paid, s.Carried, len(s.Relays))
	fmt.Fprintf(stdout, "spent set %d credits\n", spent)
	return nil
}

// Blocks implements `unfed sharechain blocks --data-dir DIR [--limit N]`.
func Blocks(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var limit *int
	ch, db, fs, err := loadChain(ctx, "sharechain blocks", "--data-dir DIR [--limit N]", args, stderr,
		func(fs *flag.FlagSet) { limit = fs.Int("limit", 20, "show the last `N` best-chain blocks") })
	if err != nil {
		return err
	}
	defer db.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	main := ch.MainChain()
	if *limit > 0 && len(main) > *limit {
		main = main[len(main)-*limit:]
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HEIGHT\tID\tTIME\tPRODUCER\tCREDITS\tUNITS\tUNCLES")
	for i := len(main) - 1; i >= 0; i-- {
		b := main[i]
		id := b.ID()
		fmt.Fprintf(tw, "%d\t%x\t%s\t%s\t%d\t%d\t%d\n", b.Height, id[:8],
			time.UnixMilli(int64(b.TimeMs)).UTC().Format(time.DateTime), b.Fingerprint(), len(b.Entries), b.Units(), len(b.Uncles))
	}
	return tw.Flush()
}

// Payouts implements `unfed sharechain payouts --data-dir DIR`.
func Payouts(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	ch, db, fs, err := loadChain(ctx, "sharechain payouts", "--data-dir DIR", args, stderr, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := noArgs(fs); err != nil {
		return err
	}
	s := ch.Payouts()
	fmt.Fprintf(stdout, "matured %d of %d blocks, value %d, paid %d, carried %d\n", s.Matured, s.TipHeight, s.Value, s.Paid, s.Carried)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RELAY\tPAYOUT\tWINDOW SHARES")
	for _, r := range s.Relays {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", r.Relay, r.Amount, r.Shares)
	}
	return tw.Flush()
}

// Relay implements `unfed sharechain relay FP --data-dir DIR`.
func Relay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	// `relay FP --data-dir DIR` as well as `relay --data-dir DIR FP`.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		args = append(append([]string{}, args[1:]...), args[0])
	}
	ch, db, fs, err := loadChain(ctx, "sharechain relay", "--data-dir DIR FINGERPRINT", args, stderr, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if fs.NArg() != 1 {
		return errors.New("sharechain: relay needs one FINGERPRINT")
	}
	fp, err := keys.ParseFingerprint(fs.Arg(0))
	if err != nil {
		return err
	}
	var blocks, credits int
	var units uint64
	for _, b := range ch.MainChain() {
		if b.Fingerprint() == fp {
			blocks++
			credits += len(b.Entries)
			units += b.Units()
		}
	}
	var payout, shares uint64
	for _, r := range ch.Payouts().Relays {
		if r.Relay == fp {
			payout, shares = r.Amount, r.Shares
		}
	}
	fmt.Fprintf(stdout, "relay %s\n", fp)
	fmt.Fprintf(stdout, "best-chain blocks %d credits %d units %d\n", blocks, credits, units)
	fmt.Fprintf(stdout, "window shares %d payout %d\n", shares, payout)
	st := ch.StakeOf(fp)
	fmt.Fprintf(stdout, "stake %d unbonding %d released %d burned %d\n", st.Locked, st.Unbonding, st.Released, st.Burned)
	if st.Unbonding > 0 {
		fmt.Fprintf(stdout, "unbonding stake released at height %d\n", st.ReleaseAt)
	}
	if h, ok := ch.SlashedAt(fp); ok {
		fmt.Fprintf(stdout, "slashed at height %d\n", h)
	}
	return nil
}

// SlashedAt returns the best-chain height at which fp was slashed (spec 12
// §7.2), if it was.
func (c *Chain) SlashedAt(fp keys.Fingerprint) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.slashed[fp]
	return h, ok
}

// Serve implements `unfed sharechain serve --data-dir DIR [--listen ADDR]
// [--mint URL] [--peer URL]...`: a node that follows the chain without
// producing (what an authority runs), taking gossip, forwarding new blocks
// to its peers, and serving the explorer API and /metrics.
// Mint keys come from --mint (fetched and recorded) and from the store.
func Serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := daemon.NewFlagSet("sharechain serve", "--data-dir DIR [--listen ADDR] [--mint URL]", stderr)
	dir := fs.String("data-dir", "", "the node's data `DIR`")
	listen := fs.String("listen", "127.0.0.1:0", "HTTP listen `ADDR`")
	mintURL := fs.String("mint", "", "fetch and record the mint keys of the mint at `URL`")
	var peers peerList
	fs.Var(&peers, "peer", "forward accepted blocks to the node at `URL` (repeatable)")
	params := paramFlags(fs)
	db, err := openFlag(fs, args, dir)
	if err != nil {
		return err
	}
	defer db.Close()
	if *mintURL != "" {
		pubs, err := HTTPIssuer{URL: *mintURL, Client: &http.Client{Timeout: 30 * time.Second}}.PublicKeys(ctx)
		if err != nil {
			return err
		}
		if err := db.SaveKeys(ctx, pubs); err != nil {
			return err
		}
	}
	ks, err := db.LoadKeys(ctx)
	if err != nil {
		return err
	}
	p, err := params(ctx, db)
	if err != nil {
		return err
	}
	n, err := NewNode(ctx, NodeConfig{Params: p, Keys: ks, DB: db})
	if err != nil {
		return err
	}
	defer n.Close()
	if len(peers) > 0 {
		n.StartForwarder(ctx, peers)
	}
	reg := obs.NewRegistry()
	reg.MustRegister(n.Collectors()...)
	mux := http.NewServeMux()
	mux.Handle("/sharechain/", n.Handler(nil))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("sharechain: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	obs.AnnounceListener(stdout, "sharechain", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		return fmt.Errorf("sharechain: serve: %w", err)
	}
}
