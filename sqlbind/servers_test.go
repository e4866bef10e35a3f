package sqlbind

import (
	"errors"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// The database servers start once per package, when a test first needs
// one, and stop after the last test.
var (
	mariaOnce sync.Once
	maria     *testutil.MariaDB
	mariaErr  error
	pgOnce    sync.Once
	pg        *testutil.Postgres
	pgErr     error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if maria != nil {
		maria.Close()
	}
	if pg != nil {
		pg.Close()
	}
	os.Exit(code)
}

func needServer(t testing.TB, err error, what, pkg string) {
	t.Helper()
	if errors.Is(err, testutil.ErrNoServer) {
		testutil.Missing(t, what, pkg, err)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func needMariaDB(t testing.TB) *testutil.MariaDB {
	mariaOnce.Do(func() { maria, mariaErr = testutil.StartMariaDB() })
	needServer(t, mariaErr, "MariaDB", "mariadb-server")
	return maria
}

func needPostgres(t testing.TB) *testutil.Postgres {
	pgOnce.Do(func() { pg, pgErr = testutil.StartPostgres() })
	needServer(t, pgErr, "PostgreSQL", "postgresql")
	return pg
}

// mariaArgs is the Lua argument list of env:connect for MariaDB.
func mariaArgs(m *testutil.MariaDB, db string) string {
	return luaQuote(db) + ", " + luaQuote(m.User) + ", " + luaQuote(m.Password) + ", " + luaQuote(m.Socket)
}

func pgArgs(p *testutil.Postgres, db string) string {
	return luaQuote(db) + ", " + luaQuote(p.User) + ", " + luaQuote(p.Password) + ", " + luaQuote(p.Dir) + ", " + strconv.Itoa(p.Port)
}

func TestMariaDBConformance(t *testing.T) {
	m := needMariaDB(t)
	conformance(t, newState(t), `T = { driver = "mysql", connect = {`+mariaArgs(m, m.Database)+`},
		bad = {`+mariaArgs(m, "nosuchdb")+`}, ph = function(i) return "?" end }`)
}

func TestPostgresConformance(t *testing.T) {
	p := needPostgres(t)
	conformance(t, newState(t), `T = { driver = "postgres", connect = {`+pgArgs(p, p.Database)+`},
		bad = {`+pgArgs(p, "nosuchdb")+`}, ph = function(i) return "$" .. i end }`)
}
