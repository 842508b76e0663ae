package sharechain

import (
	"context"
	"database/sql"
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
// entries: migration 7 keeps every one of them (and their credit ids
// unique), and drops the spent set's epoch index.
func TestMigrationRowidPending(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old, err := sql.Open(driverName, "file:"+filepath.Join(dir, DBFile)+"?_synchronous=FULL")
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range migrations[:6] {
		if _, err := old.Exec(m); err != nil {
			t.Fatalf("migration %d: %v", i+1, err)
		}
	}
	m := testMint(t, nil)
	es := []Entry{}
	for i, c := range fastCredits(t, m, 3) {
		e := c.Pay(identity(t, 1).Fingerprint(), uint32(i+1))
		es = append(es, e)
		id := e.Credit.ID()
		if _, err := old.Exec("INSERT INTO pending(credit_id, units, credit, spend_sig) VALUES (?,?,?,?)", id[:], int64(e.Units), e.Credit.Marshal(), e.SpendSig); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := old.Exec("PRAGMA user_version = 6"); err != nil {
		t.Fatal(err)
	}
	old.Close()
	db, err := OpenDB(dir)
	if err != nil {
		t.Fatal(err)
	}
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
	id := es[0].Credit.ID()
	if _, err := db.sql.Exec("INSERT INTO pending(credit_id, units, credit, spend_sig) VALUES (?,1,x'',x'')", id[:]); err == nil {
		t.Fatal("a second pending row for one credit id was accepted")
	}
	var n int
	if err := db.sql.QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'spent_epoch'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("spent_epoch index: %d (%v)", n, err)
	}
}
