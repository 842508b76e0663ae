//go:build pinned

// Package sharechain will hold the share-chain that pays relays (a later
// wave; see README.md). Until then this file, compiled only with the
// never-set build tag "pinned", keeps the chosen SQLite driver pinned in
// go.mod at the version the project settled on, so `go mod tidy` does not
// drop it.
package sharechain

import _ "github.com/mattn/go-sqlite3"
