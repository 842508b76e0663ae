//go:build !cgo

package sharechain

import (
	"database/sql"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// Without cgo go-sqlite3 is a stub whose Open fails with an error that says
// cgo is needed; the rest of unfed (the demo included) builds and runs.
func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{})
}
