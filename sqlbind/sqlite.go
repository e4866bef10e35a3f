package sqlbind

import (
	"database/sql"
	"strings"

	// SQLite's C, compiled into the worker (which needs cgo anyway): its
	// SELECTs are faster and a clean build shorter than with the pure Go
	// port (BENCHMARKS.md).
	_ "github.com/mattn/go-sqlite3"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
)

// openSQLite: source is the database file (created when missing) or
// ":memory:". Several workers share a file, so a writer waits up to 5s
// for another's lock instead of failing at once (SQLITE_BUSY).
func openSQLite(_ *pollconn.Deadline, source, _, _, _, _ string) (*sql.DB, error) {
	sep := "?"
	if strings.Contains(source, "?") {
		sep = "&"
	}
	return sql.Open("sqlite3", source+sep+"_busy_timeout=5000")
}
