package sharechain

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/circl/blindsign/blindrsa"
)

// BenchmarkCreditIssue is one credit end to end: the wallet blinds, the mint
// signs, the wallet finalizes and verifies (no store).
func BenchmarkCreditIssue(b *testing.B) {
	m := testMint(b, nil)
	k := keyOf(b, m, 1)
	cl, _ := newBlindClient(k)
	signer := m.keys[k.ID()].signer
	var size int
	for b.Loop() {
		p, err := cl.blind(k.ID())
		if err != nil {
			b.Fatal(err)
		}
		bs, err := signer.BlindSign(p.blinded)
		if err != nil {
			b.Fatal(err)
		}
		if p.credit.Signature, err = cl.finalize(p.state, bs); err != nil {
			b.Fatal(err)
		}
		size = len(p.credit.Marshal())
	}
	b.ReportMetric(float64(size), "credit-bytes")
	b.ReportMetric(float64((k.Key.N.BitLen()+7)/8), "blinded-bytes")
}

// BenchmarkMintBlindSign is the mint's share of an issuance.
func BenchmarkMintBlindSign(b *testing.B) {
	m := testMint(b, nil)
	k := keyOf(b, m, 1)
	cl, _ := newBlindClient(k)
	p, _ := cl.blind(k.ID())
	signer := blindrsa.NewSigner(testRSA[0])
	for b.Loop() {
		if _, err := signer.BlindSign(p.blinded); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCreditVerify is a relay's check of one credit (parse, key
// lookup, epoch, RSA-PSS verify).
func BenchmarkCreditVerify(b *testing.B) {
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	raw := credits(b, m, 1, 1)[0].Credit.Marshal()
	for b.Loop() {
		c, err := ParseCredit(raw)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ks.CheckCredit(c, testEpoch); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpentSetInsert is the durable part of a redemption: distinct
// credit ids from 256 concurrent callers into one relay's spent set
// (synchronous=FULL, group commit). Its ns/op is per redemption.
func BenchmarkSpentSetInsert(b *testing.B) {
	ctx := context.Background()
	s := NewSpentSet(openDB(b), &KeySet{})
	defer s.Close()
	b.SetParallelism(128)
	b.RunParallel(func(pb *testing.PB) {
		var id CreditID
		for pb.Next() {
			rand.Read(id[:])
			if err := s.MarkSpent(ctx, id, testEpoch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "redemptions/s")
}

// BenchmarkBlockValidate adds a block of 100 credit entries to a chain:
// parse, signature, 100 RSA verifications, spent-set rule, store.
func BenchmarkBlockValidate(b *testing.B) {
	ctx := context.Background()
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	p := DefaultParams("bench")
	var pays []payment
	for _, c := range credits(b, m, 1, 100) {
		pays = append(pays, pay(c, 1))
	}
	raw := mkBlock(b, p, identity(b, 1), nil, testNowMs, nil, pays...).Marshal()
	b.ReportMetric(float64(len(raw)), "block-bytes")
	db := openDB(b)
	for b.Loop() {
		ch, _ := NewChain(ctx, p, ks, nil)
		ch.db = db
		blk, err := ParseBlock(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.Add(ctx, blk, testNowMs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpentSetMillion inserts 10^6 distinct ids and reports the
// database's size (run with -benchtime=1x).
func BenchmarkSpentSetMillion(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		db := openDB(b)
		s := NewSpentSet(db, &KeySet{})
		const n, workers = 1_000_000, 256
		done := make(chan struct{})
		for w := 0; w < workers; w++ {
			go func() {
				defer func() { done <- struct{}{} }()
				var id CreditID
				for i := 0; i < n/workers; i++ {
					rand.Read(id[:])
					if err := s.MarkSpent(ctx, id, testEpoch); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		for w := 0; w < workers; w++ {
			<-done
		}
		s.Close()
		if _, err := db.sql.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "redemptions/s")
	}
}

// BenchmarkNodePay is the per-payment cost at one hop: a fresh credit
// verified and durably redeemed (Node.Pay), 8 payments in flight. The
// per-token overhead on the wire is one credit (credit-bytes of
// BenchmarkCreditIssue) inside the hop's onion layer.
func BenchmarkNodePay(b *testing.B) {
	ctx := context.Background()
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	cs := credits(b, m, 1, 400)
	for b.Loop() {
		b.StopTimer()
		n, err := NewNode(ctx, NodeConfig{Params: DefaultParams("bench"), Keys: ks, DB: openDB(b), Identity: identity(b, 1)})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		sem := make(chan struct{}, 8)
		errs := make(chan error, len(cs))
		for _, c := range cs {
			sem <- struct{}{}
			go func() {
				defer func() { <-sem }()
				errs <- n.Pay(ctx, c.Pay(n.cfg.Identity.Fingerprint(), 1), testNowMs)
			}()
		}
		for range cs {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		n.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(cs)), "µs/payment")
}

// BenchmarkChainReload reopens a stored chain of 50 blocks of 100 credit
// entries (5,000 credits): parse, block signatures and every chain rule,
// without the credits' RSA and spend signatures (verified before storing).
func BenchmarkChainReload(b *testing.B) {
	ctx := context.Background()
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	p := DefaultParams("bench")
	db := openDB(b)
	ch, _ := NewChain(ctx, p, ks, db)
	var cs []Coin
	for len(cs) < 5000 {
		cs = append(cs, credits(b, m, 1, 1000)...)
	}
	var prev *Block
	for i := 0; i < 50; i++ {
		var pays []payment
		for _, c := range cs[i*100 : (i+1)*100] {
			pays = append(pays, pay(c, 1))
		}
		prev = mkBlock(b, p, identity(b, 1), prev, testNowMs+uint64(i), nil, pays...)
		if err := ch.Add(ctx, prev, testNowMs); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		again, err := NewChain(ctx, p, ks, db)
		if err != nil || again.Len() != 50 {
			b.Fatalf("reload: %v", err)
		}
	}
}

// fastCredits makes n valid credits of the test mint's denomination-1 key
// by signing them directly with its private key (RSASSA-PSS, as a
// finalized blind signature is): issuing through the blind protocol would
// cost the benchmark minutes per ten thousand credits.
func fastCredits(b testing.TB, m *Mint, n int) []Coin {
	b.Helper()
	k := keyOf(b, m, 1)
	priv := testRSA[0]
	out := make([]Coin, n)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 2 {
				seed := make([]byte, ed25519.SeedSize)
				rand.Read(seed)
				c := &Credit{KeyID: k.ID()}
				copy(c.Nonce[:], ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
				rand.Read(c.Prefix[:])
				h := sha512.Sum384(c.prepared())
				sig, err := rsa.SignPSS(rand.Reader, priv, crypto.SHA384, h[:], &rsa.PSSOptions{SaltLength: 48})
				if err != nil {
					panic(err)
				}
				c.Signature = sig
				out[i] = Coin{Credit: c, seed: seed}
			}
		}()
	}
	wg.Wait()
	if err := out[0].Credit.Verify(k); err != nil {
		b.Fatalf("a directly signed credit does not verify: %v", err)
	}
	return out
}

// BenchmarkNodePayThroughput is a relay's sustained redemption throughput:
// 4096 distinct credits per run on a fresh store, through the whole
// verification path of Node.Pay (spend signature, key and price bound,
// chain check, RSA-PSS verification, durable insert into the spent set and
// pending table with group commit), 256 payments in flight, and the share
// blocks that carry them (Produce: four blocks of 1024 entries, validated
// and stored), as the relay makes them.
func BenchmarkNodePayThroughput(b *testing.B) {
	ctx := context.Background()
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	cs := fastCredits(b, m, 4096)
	var total int
	var perRedemption, usedPerRedemption float64
	var cpu time.Duration
	for b.Loop() {
		b.StopTimer()
		db := openDB(b)
		n, err := NewNode(ctx, NodeConfig{Params: DefaultParams("bench"), Keys: ks, DB: db, Identity: identity(b, 1)})
		if err != nil {
			b.Fatal(err)
		}
		fp := n.cfg.Identity.Fingerprint()
		entries := make([]Entry, len(cs))
		for i, c := range cs {
			entries[i] = c.Pay(fp, 1)
		}
		b.StartTimer()
		cpu0 := processCPU()
		payAll(b, n, entries)
		for n.Pending() > 0 {
			if _, err := n.Produce(ctx, testNowMs); err != nil {
				b.Fatal(err)
			}
		}
		total += len(entries)
		cpu += processCPU() - cpu0
		b.StopTimer()
		n.Close()
		if _, err := db.sql.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		var pages, free, size int64
		for q, v := range map[string]*int64{"page_count": &pages, "freelist_count": &free, "page_size": &size} {
			if err := db.sql.QueryRow("PRAGMA " + q).Scan(v); err != nil {
				b.Fatal(err)
			}
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		perRedemption = float64(fi.Size()) / float64(len(entries))
		usedPerRedemption = float64((pages-free)*size) / float64(len(entries))
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "redemptions/s")
	// The store's bytes per redemption once its blocks are made: the file,
	// and its pages in use (the spent row and the entry in a stored block;
	// the pending rows' pages are free for the next redemptions).
	b.ReportMetric(perRedemption, "file-B/redemption")
	b.ReportMetric(usedPerRedemption, "used-B/redemption")
	// The process's CPU time (user and system, every thread) per
	// redemption: on a shared machine a steadier figure than the rate.
	b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(total), "cpu-µs/redemption")
}

// processCPU returns the CPU time the process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkNodePayMillion is BenchmarkNodePayThroughput over
// UNFED_BENCH_REDEMPTIONS redemptions (default 10^6) on one store, the
// relay making its blocks as it goes (a block whenever 1,024 entries wait),
// and reports the rate and the store's size, and prints (to stderr: a
// benchmark's log is cut after 10 lines) the rate and CPU per redemption of
// every chunk of 65,536, to show how the cost grows with the store.
// Credits are made in chunks with the timer stopped (signing them costs far
// more than redeeming); with UNFED_BENCH_CREDIT_CACHE naming a file, they
// are signed once, kept there with the mint key, and read back by later
// runs (≈ 0.4 GB for 10^6). Run with -benchtime 1x; not part of `make test`.
func BenchmarkNodePayMillion(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("UNFED_BENCH_REDEMPTIONS"); v != "" {
		var err error
		if total, err = strconv.Atoi(v); err != nil || total <= 0 {
			b.Fatalf("UNFED_BENCH_REDEMPTIONS=%q", v)
		}
	}
	var cache *creditCache
	if path := os.Getenv("UNFED_BENCH_CREDIT_CACHE"); path != "" {
		var err error
		if cache, err = openCreditCache(b, path, total); err != nil {
			b.Fatal(err)
		}
		defer cache.Close()
	}
	ctx := context.Background()
	m := testMint(b, nil)
	ks := keySetOf(b, m)
	for b.Loop() {
		b.StopTimer()
		db := openDB(b)
		n, err := NewNode(ctx, NodeConfig{Params: DefaultParams("bench"), Keys: ks, DB: db, Identity: identity(b, 1)})
		if err != nil {
			b.Fatal(err)
		}
		fp := n.cfg.Identity.Fingerprint()
		stop := make(chan struct{})
		produced := make(chan error, 1)
		go func() { // the relay's block production, alongside the payments
			for {
				select {
				case <-stop:
					produced <- nil
					return
				default:
				}
				if n.Pending() < MaxEntries {
					time.Sleep(time.Millisecond)
					continue
				}
				if _, err := n.Produce(ctx, testNowMs); err != nil {
					produced <- err
					return
				}
			}
		}()
		if cache != nil {
			cache.Rewind()
		}
		var cpu, wall time.Duration
		for done := 0; done < total; {
			chunk := min(65536, total-done)
			var cs []Coin
			if cache != nil {
				if cs, err = cache.Next(chunk); err != nil {
					b.Fatal(err)
				}
			} else {
				cs = fastCredits(b, m, chunk)
			}
			entries := make([]Entry, len(cs))
			for i, c := range cs {
				entries[i] = c.Pay(fp, 1)
			}
			b.StartTimer()
			cpu0, t0 := processCPU(), time.Now()
			payAll(b, n, entries)
			dc, dw := processCPU()-cpu0, time.Since(t0)
			cpu, wall = cpu+dc, wall+dw
			b.StopTimer()
			fmt.Fprintf(os.Stderr, "redemptions %7d–%7d: %6.0f/s, %4.0f µs CPU each\n", done, done+chunk,
				float64(chunk)/dw.Seconds(), float64(dc.Nanoseconds())/1e3/float64(chunk))
			done += chunk
		}
		b.StartTimer()
		t0 := time.Now()
		close(stop)
		if err := <-produced; err != nil {
			b.Fatal(err)
		}
		for n.Pending() > 0 {
			if _, err := n.Produce(ctx, testNowMs); err != nil {
				b.Fatal(err)
			}
		}
		wall += time.Since(t0)
		b.StopTimer()
		n.Close()
		if _, err := db.sql.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		spent, err := db.SpentCount(ctx)
		if err != nil || spent != int64(total) {
			b.Fatalf("spent set of %d (%v), want %d", spent, err, total)
		}
		b.ReportMetric(float64(total)/wall.Seconds(), "redemptions/s")
		b.ReportMetric(float64(fi.Size())/(1<<20), "MiB")
		b.ReportMetric(float64(fi.Size())/float64(total), "file-B/redemption")
		b.ReportMetric(float64(cpu.Nanoseconds())/1e3/float64(total), "cpu-µs/redemption")
		b.StartTimer()
	}
}

// creditCache is the file of UNFED_BENCH_CREDIT_CACHE: "unfed-bench-credits-1\n",
// the test mint's denomination-1 private key (PKCS #1 DER, 4-byte length),
// the number of credits (8 bytes), then per credit its spend seed (32 bytes)
// and its encoding (2-byte length). Test data of the benchmark only.
type creditCache struct {
	f     *os.File
	r     *bufio.Reader
	n     int
	start int64
}

const creditCacheMagic = "unfed-bench-credits-1\n"

// openCreditCache opens the cache at path holding at least n credits,
// making it first if it holds fewer, and installs its mint key as the test
// mint's denomination-1 key (before testMint makes one).
func openCreditCache(b *testing.B, path string, n int) (*creditCache, error) {
	c, err := readCreditCache(path)
	if err == nil && c.n < n {
		c.Close()
		err = fmt.Errorf("holds %d credits, want %d", c.n, n)
	}
	if err != nil {
		b.Logf("credit cache %s: %v; signing %d credits into it", path, err, n)
		if err := writeCreditCache(b, path, n); err != nil {
			return nil, err
		}
		if c, err = readCreditCache(path); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func readCreditCache(path string) (*creditCache, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r := bufio.NewReaderSize(f, 1<<20)
	fail := func(err error) (*creditCache, error) {
		f.Close()
		return nil, fmt.Errorf("credit cache %s: %w", path, err)
	}
	head := make([]byte, len(creditCacheMagic)+4)
	if _, err := io.ReadFull(r, head); err != nil || string(head[:len(creditCacheMagic)]) != creditCacheMagic {
		return fail(fmt.Errorf("not a credit cache (%v)", err))
	}
	der := make([]byte, binary.BigEndian.Uint32(head[len(creditCacheMagic):]))
	if len(der) > 1<<16 {
		return fail(errors.New("key too long"))
	}
	var cnt [8]byte
	if _, err := io.ReadFull(r, der); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(r, cnt[:]); err != nil {
		return fail(err)
	}
	key, err := x509.ParsePKCS1PrivateKey(der)
	if err != nil {
		return fail(err)
	}
	installed := false
	testKeysOnce.Do(func() {
		testRSA[0] = key
		if testRSA[1], err = rsa.GenerateKey(rand.Reader, MintKeyBits); err != nil {
			panic(err)
		}
		installed = true
	})
	if !installed && !testRSA[0].Equal(key) {
		return fail(errors.New("the test mint's key was made before the cache was read"))
	}
	start := int64(len(head) + len(der) + len(cnt))
	return &creditCache{f: f, r: r, n: int(binary.BigEndian.Uint64(cnt[:])), start: start}, nil
}

func writeCreditCache(b *testing.B, path string, n int) error {
	m := testMint(b, nil) // the key: the process's test mint key
	der := x509.MarshalPKCS1PrivateKey(testRSA[0])
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString(creditCacheMagic)
	binary.Write(w, binary.BigEndian, uint32(len(der)))
	w.Write(der)
	binary.Write(w, binary.BigEndian, uint64(n))
	for done := 0; done < n; {
		chunk := min(65536, n-done)
		for _, c := range fastCredits(b, m, chunk) {
			raw := c.Credit.Marshal()
			w.Write(c.seed)
			binary.Write(w, binary.BigEndian, uint16(len(raw)))
			w.Write(raw)
		}
		done += chunk
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// Rewind goes back to the first credit.
func (c *creditCache) Rewind() {
	c.f.Seek(c.start, io.SeekStart)
	c.r.Reset(c.f)
}

// Next reads the next k credits.
func (c *creditCache) Next(k int) ([]Coin, error) {
	out := make([]Coin, k)
	for i := range out {
		seed := make([]byte, ed25519.SeedSize)
		var l [2]byte
		if _, err := io.ReadFull(c.r, seed); err != nil {
			return nil, err
		}
		if _, err := io.ReadFull(c.r, l[:]); err != nil {
			return nil, err
		}
		raw := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(c.r, raw); err != nil {
			return nil, err
		}
		cr, err := ParseCredit(raw)
		if err != nil {
			return nil, err
		}
		out[i] = Coin{Credit: cr, seed: seed}
	}
	return out, nil
}

func (c *creditCache) Close() { c.f.Close() }

// payAll pays every entry at n, 256 payments in flight.
func payAll(b *testing.B, n *Node, entries []Entry) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(len(entries)); i = next.Add(1) - 1 {
				if err := n.Pay(context.Background(), entries[i], testNowMs); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
