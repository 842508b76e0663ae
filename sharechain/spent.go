package sharechain

// The spent set (spec 12 §3): a relay's record of the credits it has
// redeemed. Pipeline: Redeem checks the credit (key, epoch window,
// signature) in the caller's goroutine, then hands the id to the single
// writer goroutine, which commits whatever has queued up in one transaction
// (group commit) and only then answers each caller. An answer of nil is an
// acknowledged redemption: it is on disk.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrDoubleSpend is returned for a credit already in the spent set.
var ErrDoubleSpend = errors.New("sharechain: credit already spent")

// maxBatch bounds one group commit.
const maxBatch = 4096

type spendReq struct {
	id    CreditID
	epoch uint64
	entry *Entry // a relay's paid entry, kept in pending with the id
	done  chan error
}

// SpentSet is a relay's spent set.
type SpentSet struct {
	db   *DB
	keys *KeySet

	reqs chan *spendReq
	stop chan struct{}
	wg   sync.WaitGroup

	closeOnce sync.Once
}

// NewSpentSet starts the spent set kept in db; keys are the mint keys it
// accepts. Close stops it.
func NewSpentSet(db *DB, keys *KeySet) *SpentSet {
	s := &SpentSet{db: db, keys: keys, reqs: make(chan *spendReq, maxBatch), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.writer()
	return s
}

// Close stops the writer after it has answered every queued request.
func (s *SpentSet) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.wg.Wait()
	})
}

// Redeem verifies c at epoch now and adds it to the spent set. It returns
// the credit's key (for its denomination) and nil once the redemption is
// durable, ErrDoubleSpend if the credit was spent before (or concurrently,
// by a caller that won), or another error for a bad credit.
func (s *SpentSet) Redeem(ctx context.Context, c *Credit, now uint64) (MintPublicKey, error) {
	k, err := s.keys.CheckCredit(c, now)
	if err != nil {
		return MintPublicKey{}, err
	}
	return k, s.MarkSpent(ctx, c.ID(), k.Epoch)
}

// RedeemEntry is Redeem for a relay's paid entry e: in the transaction that
// adds e's credit to the spent set, e is also stored as pending (spec 12
// §3.3), so an acknowledged redemption survives a crash before the relay
// puts it in a block.
func (s *SpentSet) RedeemEntry(ctx context.Context, e Entry, now uint64) (MintPublicKey, error) {
	c := e.Credit
	k, err := s.keys.CheckCredit(c, now)
	if err != nil {
		return MintPublicKey{}, err
	}
	return k, s.enqueue(ctx, &spendReq{id: c.ID(), epoch: k.Epoch, entry: &e, done: make(chan error, 1)})
}

// MarkSpent adds an already verified credit id (one a block carried, say)
// to the spent set, with the same answers as Redeem. The spent set keeps
// the id and the key's epoch (spec 12 §8).
func (s *SpentSet) MarkSpent(ctx context.Context, id CreditID, epoch uint64) error {
	return s.enqueue(ctx, &spendReq{id: id, epoch: epoch, done: make(chan error, 1)})
}

func (s *SpentSet) enqueue(ctx context.Context, r *spendReq) error {
	select {
	case s.reqs <- r:
	case <-s.stop:
		return errors.New("sharechain: spent set closed")
	case <-ctx.Done():
		return ctx.Err()
	}
	// Once queued, the request is answered even if ctx ends: the caller must
	// not treat a committed redemption as failed, so wait for the writer.
	return <-r.done
}

func (s *SpentSet) writer() {
	defer s.wg.Done()
	batch := make([]*spendReq, 0, maxBatch)
	for {
		select {
		case r := <-s.reqs:
			batch = append(batch[:0], r)
		case <-s.stop:
			// Answer whatever raced with Close.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*spendReq{r})
				default:
					return
				}
			}
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.commit(batch)
	}
}

// insertRows are the row counts of the multi-row INSERTs a group commit
// uses, largest first: a batch of n rows takes n/64 statements of 64, then
// of 16, 4 and 1, each prepared once per connection.
var insertRows = []int{64, 16, 4, 1}

// multiInsert returns head followed by k groups of row ("(?,?)"), then tail.
func multiInsert(head, row, tail string, k int) string {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < k; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(tail)
	return b.String()
}

// commit inserts the batch in one transaction and answers every request:
// the spent set's rows in multi-row INSERTs whose RETURNING names the ids
// that were not there yet (the others are double spends), then the
// pending rows of the entries among them.
func (s *SpentSet) commit(batch []*spendReq) {
	res := make([]error, len(batch))
	// A credit twice in one batch: the second is a double spend whatever
	// the first turns out to be.
	first := make(map[CreditID]bool, len(batch))
	var fresh []*spendReq
	for i, r := range batch {
		if first[r.id] {
			res[i] = ErrDoubleSpend
			continue
		}
		first[r.id] = true
		fresh = append(fresh, r)
	}
	var seqs []int64
	var paid []*spendReq
	err := s.db.write(context.Background(), func(tx *writeTx) error {
		inserted := make(map[CreditID]bool, len(fresh))
		if err := s.db.insertRows(tx, fresh, "INSERT OR IGNORE INTO spent(credit_id, epoch) VALUES ", "(?,?)", " RETURNING credit_id",
			func(r *spendReq, args []any) []any { return append(args, r.id[:], int64(r.epoch)) },
			func(rows *sql.Rows) error {
				var raw []byte
				if err := rows.Scan(&raw); err != nil {
					return err
				}
				inserted[CreditID(raw)] = true
				return nil
			}); err != nil {
			return err
		}
		for _, r := range fresh {
			if inserted[r.id] && r.entry != nil {
				paid = append(paid, r)
			}
		}
		seqOf := make(map[CreditID]int64, len(paid))
		if err := s.db.insertRows(tx, paid, "INSERT INTO pending(credit_id, units, credit, spend_sig) VALUES ", "(?,?,?,?)", " RETURNING seq, credit_id",
			func(r *spendReq, args []any) []any {
				return append(args, r.id[:], int64(r.entry.Units), r.entry.Credit.Marshal(), r.entry.SpendSig)
			},
			func(rows *sql.Rows) error {
				var seq int64
				var raw []byte
				if err := rows.Scan(&seq, &raw); err != nil {
					return err
				}
				seqOf[CreditID(raw)] = seq
				return nil
			}); err != nil {
			return err
		}
		seqs = make([]int64, len(paid))
		for i, r := range paid {
			seq, ok := seqOf[r.id]
			if !ok {
				return fmt.Errorf("no seq returned for pending row %x", r.id[:8])
			}
			seqs[i] = seq
		}
		for j, r := range batch {
			if res[j] == nil && !inserted[r.id] {
				res[j] = ErrDoubleSpend
			}
		}
		return nil
	})
	if err == nil {
		s.db.pmu.Lock()
		for i, r := range paid {
			s.db.pendingSeq[r.id] = seqs[i]
		}
		s.db.pmu.Unlock()
	}
	for i, r := range batch {
		if err != nil {
			r.done <- fmt.Errorf("sharechain: spent set: %w", err)
		} else {
			r.done <- res[i]
		}
	}
}

// insertRows inserts one row per request in multi-row INSERTs (insertRows),
// the arguments of a request's row appended by args; with each, the rows a
// RETURNING clause yields.
func (db *DB) insertRows(tx *writeTx, reqs []*spendReq, head, row, tail string,
	args func(*spendReq, []any) []any, each func(*sql.Rows) error) error {
	var buf []any
	for _, k := range insertRows {
		for len(reqs) >= k {
			st, err := db.stmt(multiInsert(head, row, tail, k))
			if err != nil {
				return err
			}
			buf = buf[:0]
			for _, r := range reqs[:k] {
				buf = args(r, buf)
			}
			reqs = reqs[k:]
			if each == nil {
				if _, err := tx.Stmt(st).Exec(buf...); err != nil {
					return err
				}
				continue
			}
			rows, err := tx.Stmt(st).Query(buf...)
			if err != nil {
				return err
			}
			for rows.Next() {
				if err := each(rows); err != nil {
					rows.Close()
					return err
				}
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// Spent reports whether id is in the spent set.
func (db *DB) Spent(ctx context.Context, id CreditID) (bool, error) {
	var n int
	err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM spent WHERE credit_id = ?", id[:]).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("sharechain: spent set: %w", err)
	}
	return n > 0, nil
}

// SpentIDs returns every id in the spent set.
func (db *DB) SpentIDs(ctx context.Context) ([]CreditID, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT credit_id FROM spent")
	if err != nil {
		return nil, fmt.Errorf("sharechain: spent set: %w", err)
	}
	defer rows.Close()
	var out []CreditID
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, fmt.Errorf("sharechain: spent set: %w", err)
		}
		if len(raw) != len(CreditID{}) {
			return nil, fmt.Errorf("sharechain: spent set: id of %d bytes", len(raw))
		}
		out = append(out, CreditID(raw))
	}
	return out, rows.Err()
}

// SpentCount returns the size of the spent set.
func (db *DB) SpentCount(ctx context.Context) (int64, error) {
	var n int64
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM spent").Scan(&n); err != nil {
		return 0, fmt.Errorf("sharechain: spent set: %w", err)
	}
	return n, nil
}

// PruneSpent drops the ids of credits that can no longer be redeemed at
// epoch now (key epoch + 1 < now, spec 12 §3.2) and returns how many.
func (db *DB) PruneSpent(ctx context.Context, now uint64) (int64, error) {
	if now < 2 {
		return 0, nil
	}
	var n int64
	err := db.write(ctx, func(tx *writeTx) error {
		res, err := tx.Exec("DELETE FROM spent WHERE epoch < ?", int64(now-1))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("sharechain: spent set: %w", err)
	}
	return n, nil
}

// LoadPending returns the stored pending entries (spec 12 §8), oldest
// first. A row that does not parse is an error: the store is the node's
// own.
func (db *DB) LoadPending(ctx context.Context) ([]Entry, error) {
	if err := db.loadPendingSeqs(); err != nil {
		return nil, err
	}
	rows, err := db.sql.QueryContext(ctx, "SELECT units, credit, spend_sig FROM pending ORDER BY seq")
	if err != nil {
		return nil, fmt.Errorf("sharechain: pending: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var units int64
		var raw, sig []byte
		if err := rows.Scan(&units, &raw, &sig); err != nil {
			return nil, fmt.Errorf("sharechain: pending: %w", err)
		}
		c, err := ParseCredit(raw)
		if err != nil {
			return nil, fmt.Errorf("sharechain: pending: %w", err)
		}
		if units < 0 || units > MaxUnits {
			return nil, fmt.Errorf("sharechain: pending entry of %d units", units)
		}
		out = append(out, Entry{Units: uint32(units), Credit: c, SpendSig: sig})
	}
	return out, rows.Err()
}

// PendingCount returns how many pending entries the store holds.
func (db *DB) PendingCount(ctx context.Context) (int64, error) {
	var n int64
	if err := db.sql.QueryRowContext(ctx, "SELECT count(*) FROM pending").Scan(&n); err != nil {
		return 0, fmt.Errorf("sharechain: pending: %w", err)
	}
	return n, nil
}

// DropPending deletes the pending rows of ids.
func (db *DB) DropPending(ctx context.Context, ids []CreditID) error {
	if len(ids) == 0 {
		return nil
	}
	if err := db.write(ctx, func(tx *writeTx) error { return dropPending(tx, ids) }); err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	return nil
}

// loadPendingSeqs records the seq of every stored pending row.
func (db *DB) loadPendingSeqs() error {
	rows, err := db.sql.Query("SELECT seq, credit_id FROM pending")
	if err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	defer rows.Close()
	db.pmu.Lock()
	defer db.pmu.Unlock()
	for rows.Next() {
		var seq int64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return fmt.Errorf("sharechain: pending: %w", err)
		}
		if len(raw) != len(CreditID{}) {
			return fmt.Errorf("sharechain: pending: credit id of %d bytes", len(raw))
		}
		db.pendingSeq[CreditID(raw)] = seq
	}
	return rows.Err()
}

// dropPending deletes the pending rows of ids, by seq (runs of consecutive
// seqs in one statement); an id without a pending row is skipped.
func dropPending(tx *writeTx, ids []CreditID) error {
	db := tx.db
	db.pmu.Lock()
	var seqs []int64
	var gone []CreditID
	for _, id := range ids {
		if seq, ok := db.pendingSeq[id]; ok {
			seqs = append(seqs, seq)
			gone = append(gone, id)
		}
	}
	db.pmu.Unlock()
	if len(seqs) == 0 {
		return nil
	}
	slices.Sort(seqs)
	st, err := tx.Prepare("DELETE FROM pending WHERE seq BETWEEN ? AND ?")
	if err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	defer st.Close()
	for i := 0; i < len(seqs); {
		j := i + 1
		for j < len(seqs) && seqs[j] == seqs[j-1]+1 {
			j++
		}
		if _, err := st.Exec(seqs[i], seqs[j-1]); err != nil {
			return fmt.Errorf("sharechain: pending: %w", err)
		}
		i = j
	}
	tx.afterCommit(func() {
		db.pmu.Lock()
		for _, id := range gone {
			delete(db.pendingSeq, id)
		}
		db.pmu.Unlock()
	})
	return nil
}
