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
}

// SchemaVersion is the user_version a fully migrated store has.
var SchemaVersion = len(migrations)

// DB is an open store. Its methods are safe for concurrent use.
type DB struct {
	sql  *sql.DB
	path string
}

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
	return &DB{sql: db, path: path}, nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return db.path }

// Close closes the store.
func (db *DB) Close() error { return db.sql.Close() }

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
	tx, err := db.sql.BeginTx(ctx, nil)
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
	tx, err := db.sql.BeginTx(ctx, nil)
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
