package sharechain

// The SQLite store (spec 12 §8): one schema for every role, migrated in
// order by PRAGMA user_version, WAL journal, synchronous=FULL so that a
// transaction that has returned is on disk before anything is acknowledged.

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// driverName is go-sqlite3 with the connection set-up of spec 12 §8
// (driver_cgo.go); built without cgo, opening a store fails with
// go-sqlite3's own error saying so.
const driverName = "sqlite3-unfed-sharechain"

// DBFile is the store's file name inside a data directory.
const DBFile = "sharechain.db"

// migrations are applied in order; migrations[i] moves user_version from i
// to i+1. Never edit an entry that has shipped: append a new one.
var migrations = []string{
	// 1: spent set, chain, wallet, mint issuance log, slashes.
	`CREATE TABLE spent (
		credit_id BLOB PRIMARY KEY,
		key_id    BLOB NOT NULL,
		epoch     INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE INDEX spent_epoch ON spent(epoch);
	CREATE TABLE blocks (
		id     BLOB PRIMARY KEY,
		height INTEGER NOT NULL,
		raw    BLOB NOT NULL
	);
	CREATE INDEX blocks_height ON blocks(height);
	CREATE TABLE wallet (
		credit_id BLOB PRIMARY KEY,
		denom     INTEGER NOT NULL,
		epoch     INTEGER NOT NULL,
		credit    BLOB NOT NULL,
		spent     INTEGER NOT NULL DEFAULT 0
	);
	CREATE TABLE issuance (
		seq       INTEGER PRIMARY KEY AUTOINCREMENT,
		key_id    BLOB NOT NULL,
		deposit   TEXT NOT NULL,
		blinded   BLOB NOT NULL,
		blind_sig BLOB NOT NULL
	);
	CREATE TABLE slashes (
		fingerprint BLOB PRIMARY KEY,
		height      INTEGER NOT NULL,
		proof       BLOB NOT NULL
	);`,
	// 2: the mint keys a node has accepted, so a stored chain can be
	// re-validated (and shown) without the consensus that listed them.
	`CREATE TABLE mint_keys (
		key_id BLOB PRIMARY KEY,
		epoch  INTEGER NOT NULL,
		denom  INTEGER NOT NULL,
		pkix   BLOB NOT NULL
	);`,
	// 3: the one-time spend key of each wallet credit (spec 12 §2.4).
	`ALTER TABLE wallet ADD COLUMN spend_seed BLOB NOT NULL DEFAULT x'';`,
	// 4: the entries a relay has redeemed and not yet put in a stored
	// block (spec 12 §3.3, §8), written in the spent-set transaction.
	`CREATE TABLE pending (
		credit_id BLOB PRIMARY KEY,
		units     INTEGER NOT NULL,
		credit    BLOB NOT NULL,
		spend_sig BLOB NOT NULL
	) WITHOUT ROWID;`,
	// 5: facts about the store itself: the network whose chain it holds
	// (spec 12 §5.1, §8), so a node of another network refuses it.
	`CREATE TABLE meta (
		name  TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) WITHOUT ROWID;`,
	// 6: a relay's signed unbond entries waiting for a block of its own
	// (spec 12 §7.4), written by `unfed sharechain unbond`.
	`CREATE TABLE unbond (
		credit_id BLOB PRIMARY KEY,
		credit    BLOB NOT NULL,
		spend_sig BLOB NOT NULL
	) WITHOUT ROWID;`,
	// 7: fewer pages written per redemption (spec 12 §8). pending becomes
	// a rowid table: its rows (≈ 420 B) no longer spill into an overflow
	// page each, as they did in a WITHOUT ROWID table of 1 KiB pages, and
	// are appended in order; only the small credit_id index takes a random
	// page. spent loses its epoch index, which every insert rewrote a
	// random page of for the sake of a once-an-epoch prune (a scan now).
	`CREATE TABLE pending_v7 (
		seq       INTEGER PRIMARY KEY,
		credit_id BLOB NOT NULL UNIQUE,
		units     INTEGER NOT NULL,
		credit    BLOB NOT NULL,
		spend_sig BLOB NOT NULL
	);
	INSERT INTO pending_v7(credit_id, units, credit, spend_sig)
		SELECT credit_id, units, credit, spend_sig FROM pending ORDER BY credit_id;
	DROP TABLE pending;
	ALTER TABLE pending_v7 RENAME TO pending;
	DROP INDEX spent_epoch;`,
	// 8: fewer pages per redemption again (spec 12 §8). pending loses its
	// credit_id index: a redemption's spent-set insert already refuses a
	// second row for a credit, and a node deletes its pending rows by seq
	// (it keeps each row's seq), so the index only cost a random page per
	// insert and per delete. spent loses key_id, which nothing read: 9
	// bytes fewer per row, more rows per leaf page.
	`CREATE TABLE spent_v8 (
		credit_id BLOB PRIMARY KEY,
		epoch     INTEGER NOT NULL
	) WITHOUT ROWID;
	INSERT INTO spent_v8(credit_id, epoch) SELECT credit_id, epoch FROM spent ORDER BY credit_id;
	DROP TABLE spent;
	ALTER TABLE spent_v8 RENAME TO spent;
	CREATE TABLE pending_v8 (
		seq       INTEGER PRIMARY KEY,
		credit_id BLOB NOT NULL,
		units     INTEGER NOT NULL,
		credit    BLOB NOT NULL,
		spend_sig BLOB NOT NULL
	);
	INSERT INTO pending_v8(seq, credit_id, units, credit, spend_sig)
		SELECT seq, credit_id, units, credit, spend_sig FROM pending ORDER BY seq;
	DROP TABLE pending;
	ALTER TABLE pending_v8 RENAME TO pending;`,
}

// SchemaVersion is the user_version a fully migrated store has.
var SchemaVersion = len(migrations)

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	sql  *sql.DB
	path string

	// wmu orders this process's write transactions (write): a writer waits
	// on it, not in SQLite's busy handler, which sleeps 1, 2, 5, 10 … ms
	// between tries whatever the holder does. They all run on wconn: a
	// connection drops its whole page cache when it begins a transaction
	// after another connection's commit, so writes spread over the pool's
	// connections read the spent set's pages from the file again and
	// again; one writing connection keeps them cached.
	wmu   sync.Mutex
	wconn *sql.Conn
	// The checkpointer (spec 12 §8): write signals commits on ckpt; a
	// goroutine copies the WAL into the database file off the writers'
	// path (connections never checkpoint on commit).
	ckpt      chan struct{}
	stop      chan struct{}
	ckptDone  chan struct{}
	ckptErr   atomic.Pointer[error]
	closeOnce sync.Once

	// The seq of each pending row (spec 12 §8), so that a row is deleted
	// by its seq.
	pmu        sync.Mutex
	pendingSeq map[CreditID]int64

	stmu  sync.Mutex
	stmts map[string]*sql.Stmt // prepared once, used in every transaction
}

// ckptInterval is the least time between two checkpoints: a checkpoint
// copies every page the WAL holds once and syncs the database file once,
// so checkpointing after every commit would copy hot pages and sync far
// more often than needed.
const ckptInterval = 100 * time.Millisecond

// OpenDB opens (creating and migrating if needed) the store in dataDir.
func OpenDB(dataDir string) (*DB, error) {
	if dataDir == "" {
		return nil, errors.New("sharechain: no data directory")
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("sharechain: %w", err)
	}
	path := filepath.Join(dataDir, DBFile)
	// _txlock=immediate: a write transaction takes the write lock at BEGIN,
	// so two writers never both read and then fail to upgrade.
	dsn := "file:" + path + "?_synchronous=FULL&_busy_timeout=10000&_foreign_keys=on&_txlock=immediate&_cache_size=-65536"
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("sharechain: open %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("sharechain: %s: %w", path, err)
	}
	d := &DB{sql: db, path: path, ckpt: make(chan struct{}, 1), stop: make(chan struct{}), ckptDone: make(chan struct{}),
		pendingSeq: map[CreditID]int64{}, stmts: map[string]*sql.Stmt{}}
	if err := d.loadPendingSeqs(); err != nil {
		db.Close()
		return nil, fmt.Errorf("sharechain: %s: %w", path, err)
	}
	if d.wconn, err = db.Conn(context.Background()); err != nil {
		db.Close()
		return nil, fmt.Errorf("sharechain: %s: %w", path, err)
	}
	go d.checkpointer()
	return d, nil
}

// writeTx is a write transaction of this process: it holds wmu until it
// commits or rolls back, and a commit wakes the checkpointer.
type writeTx struct {
	*sql.Tx
	db    *DB
	once  sync.Once
	after []func() // run once the transaction has committed
}

// beginWrite begins a write transaction, in turn with this process's other
// writers. Commit or Rollback ends it (Rollback after Commit does nothing).
func (db *DB) beginWrite(ctx context.Context) (*writeTx, error) {
	db.wmu.Lock()
	tx, err := db.wconn.BeginTx(ctx, nil)
	if err != nil {
		db.wmu.Unlock()
		return nil, err
	}
	return &writeTx{Tx: tx, db: db}, nil
}

// Commit commits the transaction (durably: WAL, synchronous=FULL) and then
// runs what afterCommit registered.
func (t *writeTx) Commit() error {
	err := t.Tx.Commit()
	if err == nil {
		for _, f := range t.after {
			f()
		}
	}
	t.end(err == nil)
	return err
}

// afterCommit registers f to run if and once the transaction commits.
func (t *writeTx) afterCommit(f func()) { t.after = append(t.after, f) }

// Rollback abandons the transaction.
func (t *writeTx) Rollback() error {
	err := t.Tx.Rollback()
	t.end(false)
	return err
}

func (t *writeTx) end(committed bool) {
	t.once.Do(func() {
		t.db.wmu.Unlock()
		if committed {
			select {
			case t.db.ckpt <- struct{}{}:
			default:
			}
		}
	})
}

// write runs fn in a write transaction (beginWrite) and commits it.
func (db *DB) write(ctx context.Context, fn func(tx *writeTx) error) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// checkpointer copies committed WAL frames into the database file, at most
// once every ckptInterval while there are commits, alongside the writers
// (the copying and the database file's sync are off their path). Commits
// landing during every such pass would keep the WAL from ever being wholly
// copied, so it would never start over and would grow with every page ever
// written: once it holds walRestartFrames frames, a checkpoint takes a
// second pass holding wmu, which copies the few frames committed during
// the first, and the next write transaction starts the WAL over from its
// beginning. The writers wait for that second pass only once per
// walRestartFrames frames (a few seconds of redemptions), not on every
// checkpoint.
func (db *DB) checkpointer() {
	defer close(db.ckptDone)
	for {
		select {
		case <-db.stop:
			return
		case <-db.ckpt:
		}
		if err := db.checkpoint(); err != nil {
			db.ckptErr.Store(&err)
		}
		select {
		case <-db.stop:
			return
		case <-time.After(ckptInterval):
		}
	}
}

// walRestartFrames is how many frames the WAL may hold before a checkpoint
// makes it start over (32 MiB of 1 KiB pages).
var walRestartFrames = 32768

// Test hooks: checkpointPasses is 2, and the tests set 1 to show that one
// pass alongside the writers does not let the WAL start over;
// checkpointBetween, nil outside tests, runs between the two passes.
var (
	checkpointPasses  = 2
	checkpointBetween func()
)

// checkpoint runs a pass of checkpointer and, when the WAL holds
// walRestartFrames frames or more, the second pass.
func (db *DB) checkpoint() error {
	var busy, frames, copied int
	if err := db.sql.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		return fmt.Errorf("sharechain: checkpoint: %w", err)
	}
	if checkpointBetween != nil {
		checkpointBetween()
	}
	if checkpointPasses == 1 || frames < walRestartFrames {
		return nil
	}
	db.wmu.Lock()
	defer db.wmu.Unlock()
	if _, err := db.sql.Exec("PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		return fmt.Errorf("sharechain: checkpoint: %w", err)
	}
	return nil
}

// CheckpointErr returns the last error of the background checkpointer, nil
// if it has had none. A failed checkpoint loses nothing (the WAL keeps the
// commits), but the WAL grows until one succeeds.
func (db *DB) CheckpointErr() error {
	if p := db.ckptErr.Load(); p != nil {
		return *p
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close stops the checkpointer and closes the store (SQLite checkpoints the
// WAL as its last connection closes).
func (db *DB) Close() error {
	db.stopCheckpointer()
	db.stmu.Lock()
	for q, st := range db.stmts {
		st.Close()
		delete(db.stmts, q)
	}
	db.stmu.Unlock()
	db.wconn.Close()
	return db.sql.Close()
}

// stmt returns query prepared on the store (tx.Stmt then uses it in a
// transaction without preparing it again on a connection that has it).
func (db *DB) stmt(query string) (*sql.Stmt, error) {
	db.stmu.Lock()
	defer db.stmu.Unlock()
	if st, ok := db.stmts[query]; ok {
		return st, nil
	}
	st, err := db.sql.Prepare(query)
	if err != nil {
		return nil, err
	}
	db.stmts[query] = st
	return st, nil
}

func (db *DB) stopCheckpointer() {
	db.closeOnce.Do(func() {
		close(db.stop)
		<-db.ckptDone
	})
}

// IntegrityCheck runs SQLite's integrity_check and returns an error unless it
// reports "ok".
func (db *DB) IntegrityCheck(ctx context.Context) error {
	var res string
	if err := db.sql.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("sharechain: integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("sharechain: integrity check: %s", res)
	}
	return nil
}

func migrate(db *sql.DB) error {
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program's %d", v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		if _, err := tx.Exec(migrations[v]); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
	}
	if _, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v)); err != nil {
		return err
	}
	return tx.Commit()
}

// Network returns the network whose chain the store holds, "" if none yet.
func (db *DB) Network(ctx context.Context) (string, error) {
	var v string
	err := db.sql.QueryRowContext(ctx, "SELECT value FROM meta WHERE name = 'network'").Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sharechain: store network: %w", err)
	}
	return v, nil
}

// bindNetwork records network as the store's, or refuses it if the store
// holds another network's chain.
func (db *DB) bindNetwork(ctx context.Context, network string) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("sharechain: store network: %w", err)
	}
	defer tx.Rollback()
	var have string
	err = tx.QueryRow("SELECT value FROM meta WHERE name = 'network'").Scan(&have)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := tx.Exec("INSERT INTO meta(name, value) VALUES ('network', ?)", network); err != nil {
			return fmt.Errorf("sharechain: store network: %w", err)
		}
		return tx.Commit()
	case err != nil:
		return fmt.Errorf("sharechain: store network: %w", err)
	case have != network:
		return fmt.Errorf("%w: %s holds the chain of network %q, not %q", ErrOtherNetwork, db.path, have, network)
	}
	return nil
}

// SaveKeys records mint keys (spec 12 §8).
func (db *DB) SaveKeys(ctx context.Context, ks []MintPublicKey) error {
	tx, err := db.beginWrite(ctx)
	if err != nil {
		return fmt.Errorf("sharechain: save keys: %w", err)
	}
	defer tx.Rollback()
	for _, k := range ks {
		der, err := x509.MarshalPKIXPublicKey(k.Key)
		if err != nil {
			return fmt.Errorf("sharechain: save keys: %w", err)
		}
		id := k.ID()
		if _, err := tx.Exec("INSERT OR IGNORE INTO mint_keys(key_id, epoch, denom, pkix) VALUES (?,?,?,?)",
			id[:], int64(k.Epoch), int64(k.Denom), der); err != nil {
			return fmt.Errorf("sharechain: save keys: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sharechain: save keys: %w", err)
	}
	return nil
}

// LoadKeys returns the recorded mint keys.
func (db *DB) LoadKeys(ctx context.Context) (*KeySet, error) {
	rows, err := db.sql.QueryContext(ctx, "SELECT epoch, denom, pkix FROM mint_keys")
	if err != nil {
		return nil, fmt.Errorf("sharechain: load keys: %w", err)
	}
	defer rows.Close()
	ks := &KeySet{}
	for rows.Next() {
		var e, d int64
		var der []byte
		if err := rows.Scan(&e, &d, &der); err != nil {
			return nil, fmt.Errorf("sharechain: load keys: %w", err)
		}
		pk, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return nil, fmt.Errorf("sharechain: load keys: %w", err)
		}
		rk, ok := pk.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("sharechain: load keys: key of type %T", pk)
		}
		if err := ks.Add(MintPublicKey{Epoch: uint64(e), Denom: uint64(d), Key: rk}); err != nil {
			return nil, err
		}
	}
	return ks, rows.Err()
}
