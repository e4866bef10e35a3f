package sqlbind

import (
	"path/filepath"
	"testing"
)

// The types of values, as Lua gets them: integers past 2^53 and DECIMAL
// stay exact as strings, dates are text, NULL is luasql.null in "n" mode.

// typesSrc prints each value of one row, read with and without a prepared
// statement (MariaDB's binary and text protocols), as type:value.
const typesSrc = `
local con = assert(luasql[T.driver]():connect(unpack(T.connect)))
con:execute("DROP TABLE IF EXISTS ty")
assert(con:execute("CREATE TABLE ty (d DATE, ts " .. T.datetime .. ", amount DECIMAL(8,2), f DOUBLE PRECISION, big BIGINT, s VARCHAR(10), z INTEGER)"))
assert(con:execute("INSERT INTO ty VALUES ('2024-03-05', '2024-03-05 06:07:08', 12.50, 0.25, 9007199254740993, '12', NULL)"))
local q = "SELECT d, ts, amount, f, big, s, z, big - 9007199254740000 FROM ty"
local function show(cur)
	local o = {}
	for i, v in ipairs(cur:fetch({}, "n")) do
		o[i] = type(v) .. ":" .. tostring(v)
	end
	cur:close()
	return table.concat(o, " ")
end
print(show(assert(con:execute(q))) .. "|")
print(show(assert(assert(con:prepare(q)):execute())) .. "|")
`

func testTypes(t *testing.T, setup, want string) {
	t.Helper()
	got := run(t, newState(t), "/types.lua", setup+typesSrc)
	if got != want+"|"+want+"|" {
		t.Errorf("got\n%s\nwant twice\n%s", got, want)
	}
}

func TestTypesSQLite(t *testing.T) {
	db := filepath.Join(t.TempDir(), "t.db")
	testTypes(t, `T = { driver = "sqlite3", connect = {`+luaQuote(db)+`}, datetime = "DATETIME" }`,
		"string:2024-03-05 string:2024-03-05 06:07:08 number:12.5 number:0.25 string:9007199254740993 string:12 table:luasql.null number:993")
}

func TestTypesMariaDB(t *testing.T) {
	m := needMariaDB(t)
	testTypes(t, `T = { driver = "mysql", connect = {`+mariaArgs(m, m.Database)+`}, datetime = "DATETIME" }`,
		"string:2024-03-05 string:2024-03-05 06:07:08 string:12.50 number:0.25 string:9007199254740993 string:12 table:luasql.null number:993")
}

func TestTypesPostgres(t *testing.T) {
	p := needPostgres(t)
	testTypes(t, `T = { driver = "postgres", connect = {`+pgArgs(p, p.Database)+`}, datetime = "TIMESTAMP" }`,
		"string:2024-03-05 string:2024-03-05 06:07:08 string:12.50 number:0.25 string:9007199254740993 string:12 table:luasql.null number:993")
}
