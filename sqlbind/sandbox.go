package sqlbind

import (
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
)

// Under --sandbox, SQLite reaches files as io.open does: a database is a
// plain path under --open-basedir (or ":memory:"), and ATTACH, which
// would open any other file, is refused.

// sandboxedSQLite is the SQLite driver with ATTACH refused.
var sandboxedSQLite = &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
	c.RegisterAuthorizer(func(op int, _, _, _ string) int {
		if op == sqlite3.SQLITE_ATTACH {
			return sqlite3.SQLITE_DENY
		}
		return sqlite3.SQLITE_OK
	})
	return nil
}}

// openConfined opens a SQLite database for a sandboxed state.
func openConfined(dl *pollconn.Deadline, dirs []string, source string) (*sql.DB, error) {
	if source != ":memory:" {
		if strings.HasPrefix(source, "file:") || strings.ContainsAny(source, "?\x00") {
			return nil, errors.New("a plain file name is needed under --sandbox")
		}
		if !allowed(dirs, source) {
			return nil, fmt.Errorf("%s is outside --open-basedir (sandbox)", source)
		}
	}
	return sql.OpenDB(sqliteConnector{sandboxedSQLite, source + "?_busy_timeout=5000", dl}), nil
}

// allowed reports whether path, symlinks resolved (through its directory
// when it does not exist yet), is under one of dirs, which are resolved.
func allowed(dirs []string, path string) bool {
	abs, err := filepath.Abs(path)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return false
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(abs))
		base := filepath.Base(abs)
		if err != nil || base == "/" || base == "." || base == ".." {
			return false
		}
		real = filepath.Join(dir, base)
	}
	for _, d := range dirs {
		if d == "/" || real == d || strings.HasPrefix(real, d+"/") {
			return true
		}
	}
	return false
}

// resolveDirs resolves the --open-basedir directories as luabind does.
func resolveDirs(dirs []string) ([]string, error) {
	var out []string
	for _, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return nil, err
		}
		real, err := filepath.EvalSymlinks(abs)
		if err != nil {
			return nil, err
		}
		out = append(out, real)
	}
	return out, nil
}
