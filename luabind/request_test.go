package luabind

import (
	"strings"
	"testing"
)

// refQuery is the Lua parse_query and urldecode that request.c replaced:
// the C versions must give the same tables.
const refQuery = `
local function unescape(s)
	s = string.gsub(s, "+", " ")
	return (string.gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end
local function add(t, k, v)
	local old = t[k]
	if old == nil then t[k] = v
	elseif type(old) == "table" then old[#old + 1] = v
	else t[k] = {old, v} end
end
local function ref(q)
	local t = {}
	if not q then return t end
	for pair in string.gmatch(q, "[^&;]+") do
		local k, v = string.match(pair, "^([^=]*)=?(.*)$")
		add(t, unescape(k), unescape(v))
	end
	return t
end
local function dump(t)
	local keys = {}
	for k in pairs(t) do keys[#keys + 1] = k end
	table.sort(keys)
	local o = {}
	for _, k in ipairs(keys) do
		local v = t[k]
		if type(v) == "table" then v = "{" .. table.concat(v, "|") .. "}" end
		o[#o + 1] = string.format("%q=%q", k, v)
	end
	return table.concat(o, ",")
end
`

func TestParseQueryMatchesLua(t *testing.T) {
	st := newState(t)
	cases := []string{
		"", "a", "a=", "=b", "=", "a=1&a=2&a=3", "a=1;b=2", "&&a=1&&;;b&", "k%3D=v%3d=w",
		"x=%zz%4", "%", "%4", "%41%4a%4A", "a+b=c+d", "a=%2B+%2b", "a=1&a", "a&a=1&a=2",
		"q=h%20i&x=%E2%82%AC", "a=b=c", "+=+", "a=1&b=2&a=3&b=4&a=5",
	}
	for _, q := range cases {
		c := load(t, st, "q", refQuery+`
			local q = magnet.request.query
			local want, got = dump(ref(q)), dump(magnet.parse_query(q))
			if want ~= got then print("parse_query: want ", want, " got ", got) end
			local w2, g2 = unescape(q), magnet.urldecode(q)
			if w2 ~= g2 then print("urldecode: want ", w2, " got ", g2) end
			if dump(magnet.request.get) ~= want then print("get differs") end`)
		if out := run(t, st, c, request("QUERY_STRING", q)); out != "" {
			t.Errorf("%q: %s", q, out)
		}
	}
	c := load(t, st, "nil", `print(next(magnet.parse_query(nil)) == nil, next(magnet.parse_query()) == nil,
		magnet.parse_query(12).x == nil, next(magnet.parse_query(12)), pcall(magnet.parse_query, {}))`)
	if out := run(t, st, c, nil); out != "truetruetrue12falsebad argument #1 to '?' (string expected, got table)" {
		t.Errorf("got %q", out)
	}
}

// TestParseQueryMany: 100,000 query arguments, with repeats, cost a
// table, not a crash or the stack.
func TestParseQueryMany(t *testing.T) {
	st := newState(t)
	var b strings.Builder
	for i := range 100000 {
		b.WriteString("k")
		b.WriteByte(byte('a' + i%7))
		b.WriteString("=v&")
	}
	c := load(t, st, "many", `local n, m = 0, 0
		for k, v in pairs(magnet.request.get) do n = n + 1 m = m + #v end
		print(n, " ", m)`)
	if out := run(t, st, c, request("QUERY_STRING", b.String())); out != "7 100000" {
		t.Fatalf("got %q", out)
	}
}

// TestRequestLazyFields: the fields of magnet.request are made on first
// read and then kept; absent params read as nil.
func TestRequestLazyFields(t *testing.T) {
	st := newState(t)
	c := load(t, st, "lazy", `local r = magnet.request
		local before = rawget(r, "method")
		print(tostring(before), " ", r.method, " ", rawget(r, "method"), " ", tostring(r.path_info), " ",
			r.params == r.params, " ", r.params.X, " ", r.content_length + 1, " ", r.body == r.body, " ",
			type(r.get), " ", tostring(r.nothing), " ", r.uri, " ", r.remote_addr)`)
	out := run(t, st, c, request("REQUEST_METHOD", "POST", "X", "y", "CONTENT_LENGTH", "0", "REQUEST_URI", "/a?b", "REMOTE_ADDR", "::1"))
	if out != "nil POST POST nil true y 1 true table nil /a?b ::1" {
		t.Fatalf("got %q", out)
	}
}

// BenchmarkRequestGet: a page reads one query argument from a request
// with the params nginx sends.
func BenchmarkRequestGet(b *testing.B) {
	st := newState(b)
	c := load(b, st, "get", `local g = tonumber(magnet.request.get.g) or 1`)
	r := request("SCRIPT_FILENAME", "/srv/www/page.lua", "QUERY_STRING", "g=42", "REQUEST_METHOD", "GET",
		"CONTENT_TYPE", "", "CONTENT_LENGTH", "", "SCRIPT_NAME", "/page.lua", "REQUEST_URI", "/page.lua?g=42",
		"DOCUMENT_URI", "/page.lua", "DOCUMENT_ROOT", "/srv/www", "SERVER_PROTOCOL", "HTTP/1.1",
		"GATEWAY_INTERFACE", "CGI/1.1", "SERVER_SOFTWARE", "nginx/1.22.1", "REMOTE_ADDR", "127.0.0.1",
		"REMOTE_PORT", "51234", "SERVER_ADDR", "127.0.0.1", "SERVER_PORT", "80", "SERVER_NAME", "localhost",
		"HTTP_HOST", "localhost", "HTTP_USER_AGENT", "curl/7.88.1", "HTTP_ACCEPT", "*/*")
	b.ReportAllocs()
	for range b.N {
		if err := st.Run(c, r); err != nil {
			b.Fatal(err)
		}
	}
}
