package sqlbind

import (
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// server is what the reconnect tests do to a database server.
type server interface {
	Stop()
	Start() error
	Pid() int
}

// keep is a script that keeps its connection and a prepared statement in
// _G, as lua-magnet scripts do, and selects through both (the statement
// first: after a restart it is what reconnects).
const keep = `
if not _G.KEEP then
	_G.KEEP = assert(luasql[DRIVER]():connect(unpack(ARGS)))
	_G.STMT = assert(KEEP:prepare("SELECT 40 + 2"))
end
local cur, err = STMT:execute()
if not cur then print("error: " .. err) return end
local v = cur:fetch()
cur:close()
cur, err = KEEP:execute("SELECT 41 + 1")
if not cur then print("error: " .. err) return end
if cur:fetch() ~= v then print("another value") return end
cur:close()
print(v)
`

// reconnect: a statement while the server is down fails, the next one
// after it is back reconnects. With between, a restart between two
// statements costs the second no error either (pgx finds the connection
// dead when its write fails, before anything was sent, and sqlbind tries
// the statement once more; over TCP pollconn's check makes the write fail).
func reconnect(t *testing.T, srv server, setup string, between bool) {
	st := newState(t)
	run(t, st, "/setup.lua", setup)
	if out := run(t, st, "/keep.lua", keep); out != "42" {
		t.Fatalf("before the restart: %q", out)
	}
	if between {
		srv.Stop()
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		if out := run(t, st, "/keep.lua", keep); out != "42" {
			t.Fatalf("after a restart between statements: %q", out)
		}
	}
	srv.Stop()
	if out := run(t, st, "/keep.lua", keep); !strings.HasPrefix(out, "error: LuaSQL: error executing query.") {
		t.Errorf("server down: %q, want nil, err", out)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	// The next statement reconnects by itself.
	if out := run(t, st, "/keep.lua", keep); out != "42" {
		t.Fatalf("after the restart: %q", out)
	}

	// Inside a transaction the lost connection is an error, and the
	// transaction's end reports it; the statement after that reconnects.
	run(t, st, "/tx.lua", `assert(KEEP:setautocommit(false)); assert(KEEP:execute("SELECT 1"))`)
	srv.Stop()
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	if out := run(t, st, "/keep.lua", keep); !strings.HasPrefix(out, "error: LuaSQL: error executing query.") {
		t.Errorf("inside a transaction after a restart: %q, want nil, err", out)
	}
	run(t, st, "/tx.lua", `KEEP:rollback(); assert(KEEP:setautocommit(true))`)
	if out := run(t, st, "/keep.lua", keep); out != "42" {
		t.Fatalf("after the transaction: %q", out)
	}
}

func TestMariaDBReconnect(t *testing.T) {
	m := needMariaDB(t)
	reconnect(t, m, `_G.DRIVER = "mysql"; _G.ARGS = {`+mariaArgs(m, m.Database)+`}`, true)
}

// TestMariaDBReconnectTCP: over TCP a write to a closed connection may
// pass, so there the driver's liveness check before each statement is
// what reconnects (over the unix socket the failed write does).
func TestMariaDBReconnectTCP(t *testing.T) {
	port := testutil.FreePort(t)
	m, err := testutil.StartMariaDBIn(nil, "127.0.0.1", port)
	needServer(t, err, "MariaDB", "mariadb-server")
	defer m.Close()
	reconnect(t, m, `_G.DRIVER = "mysql"; _G.ARGS = {`+luaQuote(m.Database)+`, `+luaQuote(m.User)+`, `+
		luaQuote(m.Password)+`, "127.0.0.1", `+strconv.Itoa(port)+`}`, true)
}

func TestPostgresReconnect(t *testing.T) {
	p := needPostgres(t)
	reconnect(t, p, `_G.DRIVER = "postgres"; _G.ARGS = {`+pgArgs(p, p.Database)+`}`, true)
}

// TestPostgresReconnectTCP: over TCP a write to a connection the server
// closed may pass, and pgx learns it only from the answer; the socket's
// check before each statement (pollconn.CheckedDialer) is what makes a
// restart between two statements cost the second no error.
func TestPostgresReconnectTCP(t *testing.T) {
	p, err := testutil.StartPostgresTCP(testutil.FreePort(t))
	needServer(t, err, "PostgreSQL", "postgresql")
	defer p.Close()
	reconnect(t, p, `_G.DRIVER = "postgres"; _G.ARGS = {`+luaQuote(p.Database)+`, `+luaQuote(p.User)+`, `+
		luaQuote(p.Password)+`, "127.0.0.1", `+strconv.Itoa(p.Port)+`}`, true)
}

// stopped: a query against a server that stops answering (SIGSTOP) ends
// within the request's time limit, as nil, err; once the server answers
// again so does the connection.
func stopped(t *testing.T, srv server, setup string) {
	st := newState(t)
	run(t, st, "/setup.lua", setup)
	if out := run(t, st, "/keep.lua", keep); out != "42" {
		t.Fatalf("before: %q", out)
	}
	const limit = 2 * time.Second
	st.SetTimeout(limit)
	defer st.SetTimeout(0)
	signal(t, srv, syscall.SIGSTOP)
	start := time.Now()
	out, err := try(st, "/keep.lua", keep)
	took := time.Since(start)
	signal(t, srv, syscall.SIGCONT)
	if err != nil {
		t.Fatalf("stopped server: %v", err)
	}
	if !strings.Contains(out, "time limit") {
		t.Errorf("stopped server: %q, want nil and the time limit's error", out)
	}
	if took > limit+5*time.Second {
		t.Errorf("the query took %v, over the time limit of %v (and 5s for a loaded machine)", took, limit)
	}
	// A connection of its own, and one to set up: connect is bounded too.
	signal(t, srv, syscall.SIGSTOP)
	start = time.Now()
	out, err = try(st, "/connect.lua", `local c, err = luasql[DRIVER]():connect(unpack(ARGS)) print(tostring(c), err)`)
	took = time.Since(start)
	signal(t, srv, syscall.SIGCONT)
	if err != nil || !strings.HasPrefix(out, "nil") {
		t.Errorf("connect to a stopped server: %q, %v", out, err)
	}
	if took > limit+5*time.Second {
		t.Errorf("connect took %v, over the time limit of %v (and 5s for a loaded machine)", took, limit)
	}
	if out := run(t, st, "/keep.lua", keep); out != "42" {
		t.Fatalf("after SIGCONT: %q", out)
	}
}

// signal signals the server and its processes (PostgreSQL's backends);
// after SIGSTOP it waits until they have stopped.
func signal(t *testing.T, srv server, sig syscall.Signal) {
	t.Helper()
	pids := append([]int{srv.Pid()}, testutil.Children(srv.Pid(), "")...)
	for _, pid := range pids {
		syscall.Kill(pid, sig) // a backend may have ended
	}
	if sig != syscall.SIGSTOP {
		return
	}
	for _, pid := range pids {
		if err := testutil.WaitStopped(pid, 30*time.Second); err != nil {
			signal(t, srv, syscall.SIGCONT)
			t.Fatal(err)
		}
	}
}

func TestMariaDBStopped(t *testing.T) {
	m := needMariaDB(t)
	stopped(t, m, `_G.DRIVER = "mysql"; _G.ARGS = {`+mariaArgs(m, m.Database)+`}`)
}

func TestPostgresStopped(t *testing.T) {
	p := needPostgres(t)
	stopped(t, p, `_G.DRIVER = "postgres"; _G.ARGS = {`+pgArgs(p, p.Database)+`}`)
}

// TestSQLiteRunaway: a SQLite statement that would run for minutes ends
// at the request's time limit, as nil, err, prepared or not, and the
// connection serves the next statement.
func TestSQLiteRunaway(t *testing.T) {
	st := newState(t)
	db := luaQuote(filepath.Join(t.TempDir(), "r.db"))
	run(t, st, "/setup.lua", `_G.C = assert(luasql.sqlite3():connect(`+db+`))`)
	const long = `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) SELECT COUNT(*) FROM n`
	const limit = 300 * time.Millisecond
	st.SetTimeout(limit)
	defer st.SetTimeout(0)
	for _, src := range []string{
		`local cur, err = C:execute("` + long + `") print(cur, err)`,
		`local s = assert(C:prepare("` + long + `")) local cur, err = s:execute() print(cur, err)`,
	} {
		start := time.Now()
		out := run(t, st, "/long.lua", src)
		if took := time.Since(start); took > limit+5*time.Second {
			t.Errorf("the statement took %v, over the time limit of %v (and 5s for a loaded machine)", took, limit)
		}
		if !strings.HasPrefix(out, "nil") || !strings.Contains(out, "time limit") {
			t.Errorf("runaway statement: %q, want nil and the time limit's error", out)
		}
		if out := run(t, st, "/next.lua", `print(C:execute("SELECT 40 + 2"):fetch())`); out != "42" {
			t.Errorf("the next statement: %q", out)
		}
	}
}
