//go:build cgo

package sharechain

import (
	"database/sql"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// The connection set-up of spec 12 §8: 1 KiB pages on a new database (a
// random-key insert rewrites one leaf page, so smaller pages mean less WAL
// traffic per redemption), then WAL.
func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range []string{"PRAGMA page_size = 1024", "PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0"} {
			if _, err := c.Exec(p, nil); err != nil {
				return err
			}
		}
		return nil
	}})
}
