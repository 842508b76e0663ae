package sharechain

import (
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
