package sqlbind

import (
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/luabind"
)

// benchSQLite runs src once per iteration against a SQLite file of 1,000
// rows indexed by k, as a request would, over a connection kept in _G.
func benchSQLite(b *testing.B, src string) {
	st := newState(b)
	db := luaQuote(filepath.Join(b.TempDir(), "bench.db"))
	run(b, st, "/setup.lua", `_G.C = assert(luasql.sqlite3():connect(`+db+`))
		assert(C:execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k INTEGER, name TEXT)"))
		assert(C:execute("CREATE INDEX tk ON t (k)"))
		assert(C:setautocommit(false))
		for i = 0, 999 do assert(C:execute("INSERT INTO t (k, name) VALUES (?, ?)", math.floor(i / 10), "name " .. i)) end
		assert(C:commit()) assert(C:setautocommit(true))
		_G.N = 0`)
	runEach(b, st, src)
}

// runEach runs src on st once per iteration, as a request would.
func runEach(b *testing.B, st *luabind.State, src string) {
	c, err := st.Load("/bench.lua", []byte(src), 1700000000)
	if err != nil {
		b.Fatal(err)
	}
	r := &luabind.Request{}
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		if err := st.Run(c, r); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU time this process has used, user and system: the
// worker's share of a request, without the database server's, which
// shares the machine's cores and makes ns/op noisy.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSelect10: one indexed SELECT of 10 rows, fetched by name.
func BenchmarkSelect10(b *testing.B) {
	benchSQLite(b, `_G.N = (_G.N + 1) % 100
		local cur = C:execute("SELECT id, k, name FROM t WHERE k = ?", _G.N)`+fetch10)
}

// BenchmarkInsert: one INSERT with placeholders (a transaction of its own,
// synced to disk).
func BenchmarkInsert(b *testing.B) {
	benchSQLite(b, `assert(C:execute("INSERT INTO t (k, name) VALUES (?, ?)", 5000, "x"))`)
}

// benchMariaDB runs each once per iteration after setup, over a MariaDB
// connection kept in _G.C, from a goroutine locked to its thread as the
// worker's loop is: what a database round trip costs a request.
func benchMariaDB(b *testing.B, setup, each string) {
	m := needMariaDB(b)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := newState(b)
	run(b, st, "/setup.lua", `_G.C = assert(luasql.mysql():connect(`+mariaArgs(m, m.Database)+`))
		`+setup+`
		_G.N = 0`)
	runEach(b, st, each)
}

// fetch10 fetches cur's rows by name into one table and checks there
// were 10.
const fetch10 = `
		local row, n = cur:fetch({}, "a"), 0
		while row do n = n + 1 row = cur:fetch(row, "a") end
		if n ~= 10 then error(n) end`

// BenchmarkMariaDBSelect10: BenchmarkSelect10's page on MariaDB over its
// unix socket.
func BenchmarkMariaDBSelect10(b *testing.B) {
	benchMariaDB(b, `assert(C:execute("DROP TABLE IF EXISTS bench10"))
		assert(C:execute("CREATE TABLE bench10 (id INT PRIMARY KEY AUTO_INCREMENT, k INT, name VARCHAR(40), INDEX (k))"))
		for i = 0, 999 do assert(C:execute("INSERT INTO bench10 (k, name) VALUES (?, ?)", math.floor(i / 10), "name " .. i)) end`,
		`_G.N = (_G.N + 1) % 100
		local cur = assert(C:execute("SELECT id, k, name FROM bench10 WHERE k = ?", _G.N))`+fetch10)
}

// BenchmarkMariaDBPreparedSelect10 is bench/db's page: a statement
// prepared once and kept in _G (MariaDB's binary protocol), 10 rows with
// a DECIMAL column, fetched by name.
func BenchmarkMariaDBPreparedSelect10(b *testing.B) {
	benchMariaDB(b, `assert(C:execute("DROP TABLE IF EXISTS items10"))
		assert(C:execute("CREATE TABLE items10 (id INT NOT NULL PRIMARY KEY, grp INT NOT NULL, name VARCHAR(64) NOT NULL, price DECIMAL(8,2) NOT NULL, KEY grp (grp))"))
		for i = 1, 1000 do assert(C:execute("INSERT INTO items10 VALUES (?, ?, ?, ?)", i, i % 100, "Item " .. i .. " <Fish & Chips>", i * 1.25)) end
		_G.S = assert(C:prepare("SELECT id, name, price FROM items10 WHERE grp = ? ORDER BY id"))`,
		`_G.N = (_G.N + 1) % 100
		local cur = assert(S:execute(_G.N))`+fetch10)
}

// BenchmarkFetchRows: the per-row path alone, 1,000 rows fetched by name
// into one table.
func BenchmarkFetchRows(b *testing.B) {
	benchSQLite(b, `local cur = C:execute("SELECT id, k, name FROM t")
		local row = cur:fetch({}, "a")
		while row do row = cur:fetch(row, "a") end`)
}
