package sqlbind

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"strings"

	// SQLite's C, compiled into the worker (which needs cgo anyway): its
	// SELECTs are faster and a clean build shorter than with the pure Go
	// port (BENCHMARKS.md).
	"github.com/mattn/go-sqlite3"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
)

// openSQLite: source is the database file (created when missing) or
// ":memory:". Several workers share a file, so a writer waits up to 5s
// for another's lock instead of failing at once (SQLITE_BUSY).
func openSQLite(dl *pollconn.Deadline, source, _, _, _, _ string) (*sql.DB, error) {
	sep := "?"
	if strings.Contains(source, "?") {
		sep = "&"
	}
	return sql.OpenDB(sqliteConnector{&sqlite3.SQLiteDriver{}, source + sep + "_busy_timeout=5000", dl}), nil
}

// SQLite's statements are bounded by the binding's deadline below
// database/sql: given a context that can end, database/sql starts a
// goroutine for every result (Rows) to watch it, and waking a goroutine
// costs the worker's locked thread more than a small query. So
// database/sql gets none, and the connection gives the driver one that
// ends at the deadline (the driver interrupts SQLite then).

// sqliteConnector opens SQLite connections bounded by dl.
type sqliteConnector struct {
	drv *sqlite3.SQLiteDriver
	dsn string
	dl  *pollconn.Deadline
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) {
	conn, err := c.drv.Open(c.dsn)
	if err != nil {
		return nil, err
	}
	return &sqliteConn{conn.(*sqlite3.SQLiteConn), c.dl}, nil
}

func (c sqliteConnector) Driver() driver.Driver { return c.drv }

// deadlineCtx returns a context that ends at dl's time (DefaultTimeout
// from now when none is set).
func deadlineCtx(dl *pollconn.Deadline) (context.Context, context.CancelFunc) {
	if t := dl.Get(); !t.IsZero() {
		return context.WithDeadline(context.Background(), t)
	}
	return context.WithTimeout(context.Background(), DefaultTimeout)
}

// sqliteConn is the driver's connection with its statements bounded.
type sqliteConn struct {
	*sqlite3.SQLiteConn
	dl *pollconn.Deadline
}

func (c *sqliteConn) QueryContext(_ context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	x, cancel := deadlineCtx(c.dl)
	rows, err := c.SQLiteConn.QueryContext(x, query, args)
	return boundRows(rows, err, cancel)
}

func (c *sqliteConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	x, cancel := deadlineCtx(c.dl)
	defer cancel()
	return c.SQLiteConn.ExecContext(x, query, args)
}

func (c *sqliteConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.SQLiteConn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &sqliteStmt{s.(*sqlite3.SQLiteStmt), c.dl}, nil
}

func (c *sqliteConn) BeginTx(_ context.Context, opts driver.TxOptions) (driver.Tx, error) {
	x, cancel := deadlineCtx(c.dl)
	defer cancel()
	return c.SQLiteConn.BeginTx(x, opts)
}

// sqliteStmt is a prepared statement whose runs are bounded.
type sqliteStmt struct {
	*sqlite3.SQLiteStmt
	dl *pollconn.Deadline
}

func (s *sqliteStmt) QueryContext(_ context.Context, args []driver.NamedValue) (driver.Rows, error) {
	x, cancel := deadlineCtx(s.dl)
	rows, err := s.SQLiteStmt.QueryContext(x, args)
	return boundRows(rows, err, cancel)
}

func (s *sqliteStmt) ExecContext(_ context.Context, args []driver.NamedValue) (driver.Result, error) {
	x, cancel := deadlineCtx(s.dl)
	defer cancel()
	return s.SQLiteStmt.ExecContext(x, args)
}

// sqliteRows ends its context when closed.
type sqliteRows struct {
	*sqlite3.SQLiteRows
	cancel context.CancelFunc
}

func boundRows(rows driver.Rows, err error, cancel context.CancelFunc) (driver.Rows, error) {
	if err != nil {
		cancel()
		return nil, err
	}
	return &sqliteRows{rows.(*sqlite3.SQLiteRows), cancel}, nil
}

func (r *sqliteRows) Close() error {
	err := r.SQLiteRows.Close()
	r.cancel()
	return err
}
