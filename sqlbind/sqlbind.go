package sqlbind

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/magnet-fcgi/magnet/internal/pollconn"
	"github.com/magnet-fcgi/magnet/luabind"
)

// DefaultTimeout bounds a database call made when the run has no time
// limit (--timeout 0, or set-up code), so that a hung server never holds a
// worker for good.
const DefaultTimeout = 30 * time.Second

//go:embed luasql.lua
var luasqlSrc string

// Register installs the global luasql and the luasql.* modules in st.
// With sb (--sandbox), SQLite files are confined to sb.OpenBasedir.
func Register(st *luabind.State, sb *luabind.Sandbox) error {
	b := &binding{objs: map[int]any{}}
	if sb != nil {
		dirs, err := resolveDirs(sb.OpenBasedir)
		if err != nil {
			return fmt.Errorf("luasql: --open-basedir: %w", err)
		}
		b.confined = true
		b.dirs = dirs
	}
	t := "__luasql"
	st.Register(t, "connect", b.connect)
	st.Register(t, "execute", b.execute)
	st.Register(t, "prepare", b.prepare)
	st.Register(t+".stmt", "execute", b.run)
	st.Register(t, "commit", b.commit)
	st.Register(t, "rollback", b.rollback)
	st.Register(t, "setautocommit", b.setAutocommit)
	st.Register(t, "escape", b.escape)
	st.Register(t, "close", b.close)
	st.Register(t, "fetch", b.fetch)
	st.Register(t, "colnames", b.colnames)
	st.Register(t, "coltypes", b.coltypes)
	st.Register(t, "numrows", b.numrows)
	st.RegisterRowFetch(t, "rows")
	if err := st.DoString(luasqlSrc, "=luasql"); err != nil {
		return fmt.Errorf("luasql: %w", err)
	}
	return nil
}

// binding is one state's table of open objects. Handles are never reused,
// so a closed object's handle finds nothing.
type binding struct {
	dl       pollconn.Deadline // the running call's end, which every connection follows (bound)
	objs     map[int]any
	next     int
	confined bool     // --sandbox
	dirs     []string // --open-basedir, resolved
	spare    *cursor  // a finished cursor, for the next result's storage
	types    map[string]string
	args     []any // the placeholder values of the running call
	held     int   // the bytes of the open cursors' results
}

// conn is a connection object: a pool of one database connection, and
// the transaction open while autocommit is off.
type conn struct {
	drv        *driverInfo
	db         *sql.DB
	tx         *sql.Tx
	autocommit bool
	stmts      map[int]*stmt
}

type stmt struct {
	c     *conn
	h     int
	s     *sql.Stmt
	query bool // returns rows
}

func (b *binding) add(o any) int {
	b.next++
	b.objs[b.next] = o
	return b.next
}

// handle reads argument 1, the handle of an object of type T (what names
// it in errors). A closed object is a Lua error, as in LuaSQL.
func handle[T any](b *binding, c *luabind.Call, what string) (T, int, error) {
	var zero T
	if c.ArgType(1) != luabind.TypeNumber {
		return zero, 0, c.ArgError(1, "LuaSQL: "+what+" expected")
	}
	h := int(c.ArgNumber(1))
	o, ok := b.objs[h]
	if !ok {
		return zero, 0, fmt.Errorf("LuaSQL: %s is closed", what)
	}
	v, ok := o.(T)
	if !ok {
		return zero, 0, c.ArgError(1, "LuaSQL: "+what+" expected")
	}
	return v, h, nil
}

// bound bounds one database call by the time left to the request: every
// driver's connections stop waiting at the deadline it sets (the network
// drivers' sockets through internal/pollconn, SQLite's statements through
// contexts of their own: sqlite.go), so that the statements themselves
// take no context that can end, which would cost database/sql and the
// drivers a goroutine per statement.
func (b *binding) bound(c *luabind.Call) {
	d, ok := c.Remaining()
	if !ok {
		d = DefaultTimeout
	}
	b.dl.Set(time.Now().Add(d))
}

// connect(driver, source, user, password, host, port) -> handle | nil, err
func (b *binding) connect(c *luabind.Call) (int, error) {
	name, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	drv := drivers[name]
	if drv == nil {
		return 0, c.ArgError(1, "unknown driver "+name)
	}
	var a [5]string
	for i := range a {
		if a[i], err = c.OptString(i+2, ""); err != nil {
			return 0, err
		}
	}
	var db *sql.DB
	if b.confined && name == "sqlite3" {
		db, err = openConfined(&b.dl, b.dirs, a[0])
	} else {
		db, err = drv.open(&b.dl, a[0], a[1], a[2], a[3], a[4])
	}
	if err == nil {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		b.bound(c)
		err = db.PingContext(context.Background())
		if err != nil {
			db.Close()
		}
	}
	if err != nil {
		return c.Fail(fmt.Errorf("LuaSQL: error connecting to database. %s: %w", drv.title, err))
	}
	c.PushNumber(float64(b.add(&conn{drv: drv, db: db, autocommit: true, stmts: map[int]*stmt{}})))
	return 1, nil
}

// begin opens the transaction of a connection whose autocommit is off.
// Its BEGIN is bounded by the binding's deadline, which the caller set
// (bound); the transaction itself may span requests.
func (cn *conn) begin() error {
	if cn.autocommit || cn.tx != nil {
		return nil
	}
	tx, err := cn.db.BeginTx(context.Background(), nil)
	if err != nil {
		return err
	}
	cn.tx = tx
	return nil
}

// end commits or rolls back the open transaction, if any.
func (cn *conn) end(commit bool) error {
	if cn.tx == nil {
		return nil
	}
	var err error
	if commit {
		err = cn.tx.Commit()
	} else {
		err = cn.tx.Rollback()
	}
	cn.tx = nil
	return err
}

// execute(conn, sql, args...) -> cursor, true | count | nil, err
func (b *binding) execute(c *luabind.Call) (int, error) {
	cn, _, err := handle[*conn](b, c, "connection")
	if err != nil {
		return 0, err
	}
	q, err := c.CheckString(2)
	if err != nil {
		return 0, err
	}
	args, err := b.readArgs(c, 3)
	if err != nil {
		return 0, err
	}
	return b.do(c, cn, nil, q, isQuery(q), args)
}

// do runs a statement (s, or the text q) with args and gives its result.
func (b *binding) do(c *luabind.Call, cn *conn, s *sql.Stmt, q string, query bool, args []any) (int, error) {
	b.bound(c)
	x := context.Background()
	err := cn.begin()
	if err != nil {
		return c.Fail(b.queryErr(cn, err))
	}
	if s != nil && cn.tx != nil {
		s = cn.tx.StmtContext(x, s)
	}
	if query {
		cur, err := b.query(c, cn, s, q, args)
		if err != nil && cn.tx == nil && safeToRetry(err) {
			// The connection was found dead before the statement
			// reached the server (pgx reports it only once the result
			// is read); database/sql replaces it for the second try.
			cur, err = b.query(c, cn, s, q, args)
		}
		if err != nil {
			return c.Fail(b.queryErr(cn, err))
		}
		if cur == nil { // a statement without columns
			c.PushNumber(0)
			return 1, nil
		}
		room := b.room(c) // less cur's own storage, which goes back now
		if room >= 0 {
			room += cur.held
		}
		if cur.small(room) {
			cur.pushWhole(c)
			b.recycle(cur)
			return 1, nil
		}
		c.PushNumber(float64(b.add(cur)))
		c.PushBool(true)
		return 2, nil
	}
	var res sql.Result
	switch {
	case s != nil:
		res, err = s.ExecContext(x, args...)
	case cn.tx != nil:
		res, err = cn.tx.ExecContext(x, q, args...)
	default:
		res, err = cn.db.ExecContext(x, q, args...)
	}
	if err != nil {
		return c.Fail(b.queryErr(cn, err))
	}
	n, err := res.RowsAffected()
	if err != nil {
		n = 0
	}
	c.PushNumber(float64(n))
	return 1, nil
}

// query runs a statement that returns rows and reads its result.
func (b *binding) query(c *luabind.Call, cn *conn, s *sql.Stmt, q string, args []any) (*cursor, error) {
	var (
		rows *sql.Rows
		err  error
		x    = context.Background()
	)
	switch {
	case s != nil:
		rows, err = s.QueryContext(x, args...)
	case cn.tx != nil:
		rows, err = cn.tx.QueryContext(x, q, args...)
	default:
		rows, err = cn.db.QueryContext(x, q, args...)
	}
	if err != nil {
		return nil, err
	}
	return b.readRows(rows, b.room(c))
}

// safeToRetry reports an error that a driver marks as raised before the
// statement was sent (pgconn's SafeToRetry).
func safeToRetry(err error) bool {
	var r interface{ SafeToRetry() bool }
	return errors.As(err, &r) && r.SafeToRetry()
}

func (b *binding) queryErr(cn *conn, err error) error {
	// A network driver's connection that timed out says "invalid
	// connection" (it closed it); the deadline says why.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		!time.Now().Before(b.dl.Get()) {
		err = errors.New("the request's time limit passed")
	}
	return fmt.Errorf("LuaSQL: error executing query. %s: %w", cn.drv.title, err)
}

// prepare(conn, sql) -> stmt | nil, err
func (b *binding) prepare(c *luabind.Call) (int, error) {
	cn, _, err := handle[*conn](b, c, "connection")
	if err != nil {
		return 0, err
	}
	q, err := c.CheckString(2)
	if err != nil {
		return 0, err
	}
	b.bound(c)
	s, err := cn.db.PrepareContext(context.Background(), q)
	if err != nil {
		return c.Fail(b.queryErr(cn, err))
	}
	st := &stmt{c: cn, s: s, query: isQuery(q)}
	st.h = b.add(st)
	cn.stmts[st.h] = st
	c.PushNumber(float64(st.h))
	return 1, nil
}

// run(stmt, args...) -> as execute
func (b *binding) run(c *luabind.Call) (int, error) {
	st, _, err := handle[*stmt](b, c, "statement")
	if err != nil {
		return 0, err
	}
	args, err := b.readArgs(c, 2)
	if err != nil {
		return 0, err
	}
	return b.do(c, st.c, st.s, "", st.query, args)
}

// commit(conn) -> true | false, err
func (b *binding) commit(c *luabind.Call) (int, error) { return b.finish(c, true) }

// rollback(conn) -> true | false, err
func (b *binding) rollback(c *luabind.Call) (int, error) { return b.finish(c, false) }

func (b *binding) finish(c *luabind.Call, commit bool) (int, error) {
	cn, _, err := handle[*conn](b, c, "connection")
	if err != nil {
		return 0, err
	}
	b.bound(c)
	if err := cn.end(commit); err != nil {
		c.PushBool(false)
		c.PushString(b.queryErr(cn, err).Error())
		return 2, nil
	}
	c.PushBool(true)
	return 1, nil
}

// setautocommit(conn, on) -> true | false, err. Turning it on commits the
// open transaction, as MySQL does.
func (b *binding) setAutocommit(c *luabind.Call) (int, error) {
	cn, _, err := handle[*conn](b, c, "connection")
	if err != nil {
		return 0, err
	}
	on := c.Bool(2)
	if on && cn.tx != nil {
		cn.autocommit = true
		return b.finish(c, true)
	}
	cn.autocommit = on
	c.PushBool(true)
	return 1, nil
}

// escape(conn, s) -> s quoted for a string literal of the driver's SQL
func (b *binding) escape(c *luabind.Call) (int, error) {
	cn, _, err := handle[*conn](b, c, "connection")
	if err != nil {
		return 0, err
	}
	s, err := c.CheckString(2)
	if err != nil {
		return 0, err
	}
	c.PushString(cn.drv.escape(s))
	return 1, nil
}

// close(handle) -> true | false (already closed). A connection's open
// transaction is rolled back, its statements closed.
func (b *binding) close(c *luabind.Call) (int, error) {
	if c.ArgType(1) != luabind.TypeNumber {
		return 0, c.ArgError(1, "LuaSQL: object expected")
	}
	h := int(c.ArgNumber(1))
	o, ok := b.objs[h]
	if !ok {
		c.PushBool(false)
		return 1, nil
	}
	delete(b.objs, h)
	switch o := o.(type) {
	case *conn:
		b.bound(c)
		o.end(false)
		for sh, s := range o.stmts {
			s.s.Close()
			delete(b.objs, sh)
		}
		o.db.Close()
	case *stmt:
		o.s.Close()
		delete(o.c.stmts, h)
	case *cursor:
		b.recycle(o)
	}
	c.PushBool(true)
	return 1, nil
}
