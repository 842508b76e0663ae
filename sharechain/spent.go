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
	"sync"
)

// ErrDoubleSpend is returned for a credit already in the spent set.
var ErrDoubleSpend = errors.New("sharechain: credit already spent")

// maxBatch bounds one group commit.
const maxBatch = 4096

type spendReq struct {
	id    CreditID
	key   KeyID
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
	return k, s.MarkSpent(ctx, c.ID(), c.KeyID, k.Epoch)
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
	return k, s.enqueue(ctx, &spendReq{id: c.ID(), key: c.KeyID, epoch: k.Epoch, entry: &e, done: make(chan error, 1)})
}

// MarkSpent adds an already verified credit id (one a block carried, say)
// to the spent set, with the same answers as Redeem.
func (s *SpentSet) MarkSpent(ctx context.Context, id CreditID, key KeyID, epoch uint64) error {
	return s.enqueue(ctx, &spendReq{id: id, key: key, epoch: epoch, done: make(chan error, 1)})
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

// commit inserts the batch in one transaction and answers every request.
func (s *SpentSet) commit(batch []*spendReq) {
	res := make([]error, len(batch))
	err := func() error {
		tx, err := s.db.sql.Begin()
		if err != nil {
			return err
		}
		defer tx.Rollback()
		st, err := tx.Prepare("INSERT OR IGNORE INTO spent(credit_id, key_id, epoch) VALUES (?,?,?)")
		if err != nil {
			return err
		}
		defer st.Close()
		var pst *sql.Stmt
		for i, r := range batch {
			out, err := st.Exec(r.id[:], r.key[:], int64(r.epoch))
			if err != nil {
				return err
			}
			if n, err := out.RowsAffected(); err != nil {
				return err
			} else if n == 0 {
				res[i] = ErrDoubleSpend
				continue
			}
			if r.entry == nil {
				continue
			}
			if pst == nil {
				if pst, err = tx.Prepare("INSERT OR REPLACE INTO pending(credit_id, units, credit, spend_sig) VALUES (?,?,?,?)"); err != nil {
					return err
				}
				defer pst.Close()
			}
			if _, err := pst.Exec(r.id[:], int64(r.entry.Units), r.entry.Credit.Marshal(), r.entry.SpendSig); err != nil {
				return err
			}
		}
		return tx.Commit()
	}()
	for i, r := range batch {
		if err != nil {
			r.done <- fmt.Errorf("sharechain: spent set: %w", err)
		} else {
			r.done <- res[i]
		}
	}
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
	res, err := db.sql.ExecContext(ctx, "DELETE FROM spent WHERE epoch < ?", int64(now-1))
	if err != nil {
		return 0, fmt.Errorf("sharechain: spent set: %w", err)
	}
	return res.RowsAffected()
}

// LoadPending returns the stored pending entries (spec 12 §8), oldest
// credit id order. A row that does not parse is an error: the store is the
// node's own.
func (db *DB) LoadPending(ctx context.Context) ([]Entry, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT units, credit, spend_sig FROM pending ORDER BY credit_id")
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
	tx, err := db.sql.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	defer tx.Rollback()
	if err := dropPending(tx, ids); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	return nil
}

func dropPending(tx *sql.Tx, ids []CreditID) error {
	st, err := tx.Prepare("DELETE FROM pending WHERE credit_id = ?")
	if err != nil {
		return fmt.Errorf("sharechain: pending: %w", err)
	}
	defer st.Close()
	for _, id := range ids {
		if _, err := st.Exec(id[:]); err != nil {
			return fmt.Errorf("sharechain: pending: %w", err)
		}
	}
	return nil
}
