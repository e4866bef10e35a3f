package luabind

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"html"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

// check runs src and fails unless it printed want.
func check(t *testing.T, st *State, src, want string) {
	t.Helper()
	if got := run(t, st, load(t, st, "t", src), nil); got != want {
		t.Errorf("%s\n got %q\nwant %q", src, got, want)
	}
}

func TestEscapes(t *testing.T) {
	st := newState(t)
	in := `<a href="x?a=1&b='2'">é ~-._/</a>`
	check(t, st, `io.write(magnet.escape_html([[`+in+`]]))`, html.EscapeString(in))
	check(t, st, `io.write(magnet.escape_html("plain"))`, "plain")
	check(t, st, `io.write(magnet.escape_uri("a b/é~-._?&="))`, "a%20b%2F%C3%A9~-._%3F%26%3D")
	check(t, st, `io.write(magnet.unescape_uri("a%20b%2f%C3%A9+%zz%4"))`, "a b/é+%zz%4")
	check(t, st, `local s = "\0\1\255 x" io.write(tostring(magnet.unescape_uri(magnet.escape_uri(s)) == s))`, "true")
	check(t, st, `io.write(magnet.hex("\0\255ab"))`, "00ff6162")
	if err := st.Run(load(t, st, "bad", `magnet.escape_html({})`), &Request{}); err == nil || !strings.Contains(err.Error(), "bad argument #1 to 'escape_html'") {
		t.Errorf("escape_html({}): %v", err)
	}
}

func TestBase64(t *testing.T) {
	st := newState(t)
	for _, s := range []string{"", "f", "fo", "foo", "foob", "fooba", "foobar", "\xff\xfe\xfd?>"} {
		lua := strings.ReplaceAll(hex.EncodeToString([]byte(s)), "", "")
		src := `local s = (string.gsub("` + lua + `", "%x%x", function(h) return string.char(tonumber(h, 16)) end))
			local e, u = magnet.base64_encode(s), magnet.base64url_encode(s)
			io.write(e, " ", u, " ", tostring(magnet.base64_decode(e) == s), tostring(magnet.base64url_decode(u) == s))`
		want := base64.StdEncoding.EncodeToString([]byte(s)) + " " + base64.RawURLEncoding.EncodeToString([]byte(s)) + " truetrue"
		check(t, st, src, want)
	}
	check(t, st, `print(magnet.base64_decode("a*b="))`, "nilinvalid base64 input")
	check(t, st, `print(magnet.base64_decode("abcde"))`, "nilinvalid base64 input")
	check(t, st, `print(magnet.base64url_decode("+/+/"))`, "nilinvalid base64 input")
}

func TestCrypto(t *testing.T) {
	st := newState(t)
	sum := sha256.Sum256([]byte("abc"))
	check(t, st, `io.write(magnet.hex(magnet.sha256("abc")))`, hex.EncodeToString(sum[:]))
	m := hmac.New(sha256.New, []byte("key"))
	m.Write([]byte("msg"))
	check(t, st, `io.write(magnet.hex(magnet.hmac_sha256("key", "msg")))`, hex.EncodeToString(m.Sum(nil)))
	check(t, st, `local a, b = magnet.random_bytes(16), magnet.random_bytes(16)
		io.write(#a, " ", #b, " ", tostring(a ~= b), " ", #magnet.random_bytes(0), " ", #magnet.random_bytes(1000))`, "16 16 true 0 1000")
	for _, bad := range []string{`magnet.random_bytes(-1)`, `magnet.random_bytes(1e9)`, `magnet.random_bytes("x")`, `magnet.sha256()`, `magnet.hmac_sha256("k")`} {
		if err := st.Run(load(t, st, "bad", bad), &Request{}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestRandomSeeded: math.random is seeded per state from crypto/rand, so
// two workers do not start with the same value.
func TestRandomSeeded(t *testing.T) {
	a, b := newState(t), newState(t)
	first := func(st *State) string {
		return run(t, st, load(t, st, "r", `io.write(string.format("%.17g", math.random()))`), nil)
	}
	x, y := first(a), first(b)
	if x == y {
		t.Fatalf("two states drew the same first math.random(): %s", x)
	}
	if strings.HasPrefix(x, "0.840187") || strings.HasPrefix(y, "0.840187") {
		t.Fatalf("math.random is unseeded: %s %s", x, y)
	}
}

func TestJSON(t *testing.T) {
	st := newState(t)
	check(t, st, `io.write(magnet.json.encode({a = {1, 2, "x", magnet.json.null}}))`, `{"a":[1,2,"x",null]}`)
	check(t, st, `local t = magnet.json.decode('{"a":[1,2,"x"],"b":null,"c":true,"d":{}}')
		io.write(#t.a, t.a[3], tostring(t.b == magnet.json.null), tostring(t.c), type(t.d))`, "3xtruetruetable")
	check(t, st, `io.write(magnet.json.encode({}), magnet.json.encode({1, 2}), magnet.json.encode("é\n"), magnet.json.encode(magnet.json.null))`, `{}[1,2]"é\n"null`)
	// bad input: a Lua error, the state goes on
	for _, bad := range []string{
		`magnet.json.decode("{bad")`,
		`magnet.json.decode(string.rep("[", 100000))`,
		`local t = {} t.t = t magnet.json.encode(t)`,
		`magnet.json.encode({[1] = 1, [1000] = 2})`,
		`magnet.json.encode(print)`,
	} {
		if err := st.Run(load(t, st, "bad", bad), &Request{}); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	check(t, st, `local ok, err = pcall(magnet.json.decode, "]") io.write(tostring(ok), " ", type(err))`, "false string")
}

func TestExit(t *testing.T) {
	st := newState(t)
	// keeps the headers set so far; a body replaces what was printed
	check(t, st, `magnet.header["X-A"] = "1" print("dropped")
		local function f() magnet.exit(403, "no") end
		f() print("not reached")`, "Status: 403 Forbidden\r\nX-A: 1\r\nContent-Type: text/html\r\n\r\nno")
	// without a body what was printed stays; without a status it is 200
	check(t, st, `io.write("kept") magnet.exit() io.write("not reached")`, "kept")
	check(t, st, `io.write("a") magnet.exit(201) io.write("b")`, "Status: 201 Created\r\nContent-Type: text/html\r\n\r\na")
	// a bad header set before the exit still fails the run
	if err := st.Run(load(t, st, "badhdr", `magnet.header["X"] = "a\nb" magnet.exit(200)`), &Request{}); err == nil {
		t.Error("a bad header passed through magnet.exit")
	}
	if err := st.Run(load(t, st, "badst", `magnet.exit(42)`), &Request{}); err == nil {
		t.Error("magnet.exit(42) passed")
	}
	// the exit is no error: nothing is counted or logged
	n := st.s.nerrors
	check(t, st, `magnet.exit(200, "x")`, "Status: 200 OK\r\nContent-Type: text/html\r\n\r\nx")
	if st.s.nerrors != n {
		t.Error("magnet.exit counted as an error")
	}
}

func TestRedirectAndCookies(t *testing.T) {
	st := newState(t)
	check(t, st, `print("dropped") magnet.redirect("/done?x=1") print("not reached")`,
		"Status: 302 Found\r\nLocation: /done?x=1\r\nContent-Type: text/html\r\n\r\n")
	check(t, st, `magnet.redirect("https://example.org/", 303)`,
		"Status: 303 See Other\r\nLocation: https://example.org/\r\nContent-Type: text/html\r\n\r\n")
	check(t, st, `magnet.set_cookie("sid", "abc123", {path = "/", domain = "example.org", max_age = 3600.7,
			expires = 0, secure = true, http_only = true, same_site = "lax"})
		magnet.set_cookie("b", 2) magnet.status = 204 print("dropped")`,
		"Status: 204 No Content\r\nSet-Cookie: sid=abc123; Path=/; Domain=example.org; Max-Age=3600; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure; HttpOnly; SameSite=Lax\r\nSet-Cookie: b=2\r\n\r\n")
	for _, bad := range []string{
		`magnet.redirect("/x\r\nSet-Cookie: a=1")`,
		`magnet.redirect("/x\n")`,
		`magnet.redirect("/x", 200)`,
		`magnet.redirect(nil)`,
		`magnet.set_cookie("a b", "1")`,
		`magnet.set_cookie("a;b", "1")`,
		`magnet.set_cookie("", "1")`,
		`magnet.set_cookie("a", "1; Secure")`,
		`magnet.set_cookie("a", "x\r\ny")`,
		`magnet.set_cookie("a", "x y")`,
		`magnet.set_cookie("a", "1", {path = "/; Domain=evil"})`,
		`magnet.set_cookie("a", "1", {same_site = "sometimes"})`,
		`magnet.set_cookie("a", "1", "path=/")`,
	} {
		err := st.Run(load(t, st, "bad", bad), &Request{})
		if err == nil || !strings.Contains(err.Error(), "magnet.") {
			t.Errorf("%s: %v", bad, err)
		}
	}
	check(t, st, `print("fine")`, "fine")
}

func TestNoBodyStatus(t *testing.T) {
	st := newState(t)
	check(t, st, `magnet.status = 304 magnet.header.ETag = '"x"' print("body")`, "Status: 304 Not Modified\r\nETag: \"x\"\r\n\r\n")
	check(t, st, `magnet.status = 299 print("b")`, "Status: 299\r\nContent-Type: text/html\r\n\r\nb")
}

func TestSleep(t *testing.T) {
	st := newState(t)
	start := time.Now()
	check(t, st, `magnet.sleep(0.05) io.write("up")`, "up")
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("magnet.sleep(0.05) took %v", d)
	}
	st.SetTimeout(200 * time.Millisecond)
	start = time.Now()
	err := st.Run(load(t, st, "long", `magnet.sleep(60)`), &Request{})
	if err == nil || !strings.Contains(err.Error(), "time limit") {
		t.Fatalf("sleep past the limit: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the sleep went on past the limit: %v", d)
	}
	if err := st.Run(load(t, st, "neg", `magnet.sleep(-1)`), &Request{}); err == nil {
		t.Error("magnet.sleep(-1) passed")
	}
}

func TestLog(t *testing.T) {
	st := newState(t)
	type line struct {
		level slog.Level
		msg   string
	}
	var got []line
	st.SetLogger(func(level slog.Level, msg string) { got = append(got, line{level, msg}) })
	check(t, st, `magnet.log("warn", "a ", 1, " ", true, nil, {}) magnet.log("debug", "d") io.write("ok")`, "ok")
	want := []line{{slog.LevelWarn, "a 1 trueniltable"}, {slog.LevelDebug, "d"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("got %v, want %v", got, want)
	}
	if err := st.Run(load(t, st, "bad", `magnet.log("loud", "x")`), &Request{}); err == nil {
		t.Error("an unknown level passed")
	}
}

// jsonDoc is a document of about 2 KB, for the JSON benchmarks.
var jsonDoc = `{"items":[` + strings.TrimSuffix(strings.Repeat(`{"id":12345,"name":"a name of some length","tags":["x","y","z"],"price":12.5,"ok":true,"note":null},`, 18), ",") + `]}`

// BenchmarkJSONCjson decodes and re-encodes jsonDoc with magnet.json
// (lua-cjson), inside one script run.
func BenchmarkJSONCjson(b *testing.B) {
	st := newState(b)
	c := load(b, st, "j", `local d, n = magnet.request.params.DOC, tonumber(magnet.request.params.N)
		local dec, enc = magnet.json.decode, magnet.json.encode
		for i = 1, n do enc(dec(d)) end`)
	b.SetBytes(int64(len(jsonDoc)))
	b.ResetTimer()
	run(b, st, c, request("DOC", jsonDoc, "N", strconv.Itoa(b.N)))
}

// BenchmarkJSONGo is the Go side alone of the alternative: encoding/json
// decoding and encoding the same document, without the crossing and the
// Lua tables it would need on top.
func BenchmarkJSONGo(b *testing.B) {
	b.SetBytes(int64(len(jsonDoc)))
	for i := 0; i < b.N; i++ {
		var v any
		if err := json.Unmarshal([]byte(jsonDoc), &v); err != nil {
			b.Fatal(err)
		}
		if _, err := json.Marshal(v); err != nil {
			b.Fatal(err)
		}
	}
}
