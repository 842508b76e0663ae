package sharechain

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestStoreSchema: a new store is WAL with 1 KiB pages and fully migrated;
// reopening migrates nothing twice; a store from a newer program is refused.
func TestStoreSchema(t *testing.T) {
	dir := t.TempDir()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mode string
	var page, version, sync int
	db.sql.QueryRow("PRAGMA journal_mode").Scan(&mode)
	db.sql.QueryRow("PRAGMA page_size").Scan(&page)
	db.sql.QueryRow("PRAGMA user_version").Scan(&version)
	db.sql.QueryRow("PRAGMA synchronous").Scan(&sync)
	if mode != "wal" || page != 1024 || version != SchemaVersion || sync != 2 {
		t.Fatalf("journal %s, page %d, version %d, synchronous %d", mode, page, version, sync)
	}
	db.Close()
	if db, err = OpenDB(dir); err != nil {
		t.Fatalf("reopen: %v", err)
	}
	if _, err := db.sql.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := OpenDB(dir); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: %v", err)
	}
	if _, err := OpenDB(""); err == nil {
		t.Fatal("empty data dir accepted")
	}
}

// TestMigrationRowidPending opens a store of schema 6 holding pending
// entries: migrations 7 and 8 keep every one of them, and the spent set's
// epoch index is gone.
func TestMigrationRowidPending(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := openOldSchema(t, dir, 6)
	es := insertOldPending(t, old, testMint(t, nil), 3)
	db := migrateOld(t, old, dir, 6)
	defer db.Close()
	got, err := db.LoadPending(ctx)
	if err != nil || len(got) != len(es) {
		t.Fatalf("%d pending entries after migration (%v), want %d", len(got), err, len(es))
	}
	units := map[CreditID]uint32{}
	for _, e := range got {
		units[e.Credit.ID()] = e.Units
	}
	for _, e := range es {
		if units[e.Credit.ID()] != e.Units {
			t.Fatalf("pending entry %x: units %d, want %d", e.Credit.ID(), units[e.Credit.ID()], e.Units)
		}
	}
	var n int
	if err := db.sql.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'spent_epoch'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("spent_epoch index: %d (%v)", n, err)
	}
}

// walFrames returns the frames the WAL holds (the second result of a
// passive checkpoint, which copies what it can).
func walFrames(t *testing.T, db *DB) int {
	t.Helper()
	var busy, log, done int
	if err := db.sql.QueryRow("PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &log, &done); err != nil {
		t.Fatal(err)
	}
	return log
}

// TestCheckpointRestartsWAL: a checkpoint of a WAL of walRestartFrames
// frames or more copies it wholly into the database even when frames were
// committed after its first pass began (a reader's snapshot holds the
// first pass back here, as a commit landing during the pass would), so the
// next write starts the WAL over: it holds that write's few frames, not
// everything written before. With one pass (checkpointPasses = 1), or
// below walRestartFrames, the WAL keeps growing; the test shows it does.
func TestCheckpointRestartsWAL(t *testing.T) {
	defer func(f int) { walRestartFrames = f }(walRestartFrames)
	for _, c := range []struct {
		passes, restartAt int
		restart           bool
	}{{2, 10, true}, {1, 10, false}, {2, 1 << 20, false}} {
		walRestartFrames = c.restartAt
		frames := walAfterCheckpoint(t, c.passes)
		if c.restart && frames > 20 {
			t.Fatalf("the WAL holds %d frames after a checkpoint and one small write: it did not start over", frames)
		}
		if !c.restart && frames <= 20 {
			t.Fatalf("%d passes, restart at %d frames: the WAL holds %d frames: the test does not see the difference", c.passes, c.restartAt, frames)
		}
	}
}

func walAfterCheckpoint(t *testing.T, passes int) int {
	t.Helper()
	ctx := context.Background()
	db := openDB(t)
	db.stopCheckpointer() // this test runs the checkpoint itself
	write := func(n int) {
		err := db.write(ctx, func(tx *writeTx) error {
			for i := 0; i < n; i++ {
				var id CreditID
				rand.Read(id[:])
				if _, err := tx.Exec("INSERT INTO spent(credit_id, epoch) VALUES (?,?)", id[:], 1); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	write(2000)
	// A read transaction (deferred: the store's BeginTx is IMMEDIATE).
	reader, err := db.sql.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if _, err := reader.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := reader.QueryRowContext(ctx, "SELECT count(*) FROM spent").Scan(&n); err != nil || n != 2000 {
		t.Fatalf("reader sees %d rows (%v)", n, err)
	}
	write(200)
	defer func(p int) { checkpointPasses, checkpointBetween = p, nil }(checkpointPasses)
	checkpointPasses = passes
	checkpointBetween = func() {
		if _, err := reader.ExecContext(ctx, "ROLLBACK"); err != nil {
			t.Error(err)
		}
	}
	if err := db.checkpoint(); err != nil {
		t.Fatal(err)
	}
	write(1)
	return walFrames(t, db)
}

// TestMigrationSpentWithoutKeyID opens a store of schema 7 holding a spent
// set and pending entries: migration 8 keeps every spent credit (each is
// refused as a double spend after it) and every pending entry (each then
// deleted by its seq), drops spent.key_id and pending's credit_id index.
func TestMigrationSpentWithoutKeyID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := openOldSchema(t, dir, 7)
	var spent []CreditID
	for i := 0; i < 3000; i++ {
		var id CreditID
		rand.Read(id[:])
		spent = append(spent, id)
		if _, err := old.Exec("INSERT INTO spent(credit_id, key_id, epoch) VALUES (?,?,?)", id[:], []byte{1, 2, 3, 4, 5, 6, 7, 8}, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	m := testMint(t, nil)
	es := insertOldPending(t, old, m, 5)
	db := migrateOld(t, old, dir, 7)
	defer db.Close()
	if n, err := db.SpentCount(ctx); err != nil || n != int64(len(spent)) {
		t.Fatalf("spent set of %d after migration (%v), want %d", n, err, len(spent))
	}
	s := NewSpentSet(db, keySetOf(t, m))
	defer s.Close()
	for _, id := range spent {
		if err := s.MarkSpent(ctx, id, testEpoch); !errors.Is(err, ErrDoubleSpend) {
			t.Fatalf("credit %x spent before the migration: %v, want a double spend", id[:8], err)
		}
	}
	got, err := db.LoadPending(ctx)
	if err != nil || len(got) != len(es) {
		t.Fatalf("%d pending entries after migration (%v), want %d", len(got), err, len(es))
	}
	for i, e := range got { // oldest first
		if e.Credit.ID() != es[i].Credit.ID() || e.Units != es[i].Units || !bytes.Equal(e.SpendSig, es[i].SpendSig) {
			t.Fatalf("pending entry %d differs after migration", i)
		}
	}
	if err := db.DropPending(ctx, []CreditID{es[0].Credit.ID(), es[1].Credit.ID(), es[3].Credit.ID()}); err != nil {
		t.Fatal(err)
	}
	if got, err = db.LoadPending(ctx); err != nil || len(got) != 2 || got[0].Credit.ID() != es[2].Credit.ID() || got[1].Credit.ID() != es[4].Credit.ID() {
		t.Fatalf("after dropping 3 of 5 pending entries: %d left (%v)", len(got), err)
	}
	var n int
	if err := db.sql.QueryRow("SELECT count(*) FROM pragma_table_info('spent') WHERE name = 'key_id'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("spent.key_id: %d (%v)", n, err)
	}
	if err := db.sql.QueryRow("SELECT count(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'pending'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("indexes on pending: %d (%v)", n, err)
	}
}

// insertOldPending pays n fresh credits of m to relay 1 and writes them into
// the pending table of a store opened at an older schema (before
// migration 8 the table had a credit_id column).
func insertOldPending(t *testing.T, old *sql.DB, m *Mint, n int) []Entry {
	t.Helper()
	var es []Entry
	for i, c := range fastCredits(t, m, n) {
		e := c.Pay(identity(t, 1).Fingerprint(), uint32(i+1))
		es = append(es, e)
		id := e.Credit.ID()
		if _, err := old.Exec("INSERT INTO pending(credit_id, units, credit, spend_sig) VALUES (?,?,?,?)", id[:], int64(e.Units), e.Credit.Marshal(), e.SpendSig); err != nil {
			t.Fatal(err)
		}
	}
	return es
}

// openOldSchema creates a store in dir at schema version (migrations
// 1..version applied) through a plain connection.
func openOldSchema(t *testing.T, dir string, version int) *sql.DB {
	t.Helper()
	old, err := sql.Open(driverName, "file:"+filepath.Join(dir, DBFile)+"?_synchronous=FULL")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:version] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	return old
}

// migrateOld marks the old store at version, closes it and opens it with
// OpenDB, which migrates it.
func migrateOld(t *testing.T, old *sql.DB, dir string, version int) *DB {
	t.Helper()
	if _, err := old.Exec(fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
	return db
}
