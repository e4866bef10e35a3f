package luabind

import (
	"strings"
	"testing"
)

// The C boundary is sealed: no Lua error, from a script, from magnet's C
// code or from a Go-backed function, reaches the panic handler (which
// would end the test binary) or unwinds through Go frames (which the Go
// runtime reports as a fatal error). Each attack fails its own run only;
// the next run of a seed script is fine.

// attackFails runs src as its own script and wants a ScriptError.
func attackFails(t *testing.T, st *State, name, src string) *ScriptError {
	t.Helper()
	c := load(t, st, name, src)
	err := st.Run(c, &Request{})
	se, ok := err.(*ScriptError)
	if !ok {
		t.Fatalf("%s: got %v, want a script error", name, err)
	}
	return se
}

// seedStillWorks runs 123.lua and wants its answer.
func seedStillWorks(t *testing.T, st *State) {
	t.Helper()
	c := load(t, st, "/x/123.lua", seed(t, "123.lua"))
	if out := run(t, st, c, nil); !strings.HasSuffix(out, "\r\n\r\n123") {
		t.Fatalf("123.lua after the attack: %q", out)
	}
}

func TestSealCacheMetatable(t *testing.T) {
	st := newState(t)
	victim := load(t, st, "/p.lua", `print("Content-Type: text/plain\r\n\r\nok")`)
	run(t, st, victim, nil)
	attackFails(t, st, "/attack.lua", `
		local boom = function() error("boom") end
		setmetatable(magnet.cache["/p.lua"], {__index = boom, __newindex = boom})
		setmetatable(magnet.cache, {__index = boom, __newindex = boom})
		magnet.cache["/p.lua"].hits = nil
		error("done")`)
	for i := 0; i < 3; i++ {
		if out := run(t, st, victim, nil); !strings.HasSuffix(out, "ok") {
			t.Fatalf("victim: %q", out)
		}
	}
	// unloading and reloading go through the same entries
	st.Unload(victim)
	victim = load(t, st, "/p.lua", `print("Content-Type: text/plain\r\n\r\nagain")`)
	run(t, st, victim, nil)
	admin := load(t, st, "/x/cache-admin.lua", seed(t, "cache-admin.lua"))
	if out := run(t, st, admin, nil); !strings.Contains(out, "/p.lua") {
		t.Fatalf("cache-admin: %q", out)
	}
	seedStillWorks(t, st)
}

func TestSealGoManyResults(t *testing.T) {
	st := newState(t)
	st.Register("test", "many", func(c *Call) (int, error) {
		for i := 0; i < 100000; i++ {
			c.PushNumber(float64(i))
		}
		return 100000, nil
	})
	st.Register("test", "lies", func(c *Call) (int, error) {
		c.PushNil()
		return 5, nil
	})
	st.Register("test", "badtable", func(c *Call) (int, error) {
		c.PushString("v")
		c.SetField(-7, "k")
		return 0, nil
	})
	se := attackFails(t, st, "/many.lua", `test.many()`)
	if !strings.Contains(se.Message, "too many results") {
		t.Errorf("many: %s", se.Message)
	}
	// caught: the state goes on
	c := load(t, st, "/many-caught.lua", `local ok, err = pcall(test.many) print(tostring(ok), " ", err)`)
	if out := run(t, st, c, nil); !strings.HasPrefix(out, "false ") {
		t.Errorf("caught: %q", out)
	}
	if se := attackFails(t, st, "/lies.lua", `test.lies()`); !strings.Contains(se.Message, "returned 5 values") {
		t.Errorf("lies: %s", se.Message)
	}
	if se := attackFails(t, st, "/badtable.lua", `test.badtable()`); !strings.Contains(se.Message, "bad result") {
		t.Errorf("badtable: %s", se.Message)
	}
	seedStillWorks(t, st)
}

func TestSealGoResults(t *testing.T) {
	st := newState(t)
	st.Register("test", "echo", func(c *Call) (int, error) {
		s, err := c.CheckString(1)
		if err != nil {
			return 0, err
		}
		c.NewTable(2, 1)
		c.PushString(s)
		c.SetIndex(-2, 1)
		c.PushBool(c.Bool(2))
		c.SetField(-2, "b")
		c.PushNumber(1.5)
		return 2, nil
	})
	c := load(t, st, "/echo.lua", `
		local t, n = test.echo(12, true)
		print(t[1], " ", tostring(t.b), " ", n, " ", select("#", test.echo("x")))
		print(" ", select(2, pcall(test.echo, {})))`)
	out := run(t, st, c, nil)
	if want := "12 true 1.5 2 bad argument #1 to 'echo' (string expected, got table)"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
}

func TestSealGlobalsMetatable(t *testing.T) {
	st := newState(t)
	attackFails(t, st, "/g.lua", `
		local boom = function() error("boom") end
		setmetatable(_G, {__index = boom, __newindex = boom, __call = boom, __tostring = boom})
		print(undefined_global)`)
	attackFails(t, st, "/g2.lua", `rawset(_G, "x", 1); _G.fresh = 1`)
	seedStillWorks(t, st)
	attackFails(t, st, "/g3.lua", `setmetatable(_G, nil) error(setmetatable({}, {__tostring = function() error("no") end}))`)
	seedStillWorks(t, st)
}

func TestSealOddMagnetFields(t *testing.T) {
	st := newState(t)
	for i, src := range []string{
		`magnet.header = 5`,
		`magnet.request = "x"`,
		`magnet.cache = nil`,
		`magnet.cache = 5`,
		`magnet.status = {}`,
		`magnet.status = "abc"`,
		`setmetatable(magnet, nil)`,
		`magnet.header = setmetatable({}, {__newindex = function() error("x") end}) magnet.header.X = "1"`,
		`magnet.header["bad name"] = "x"`,
	} {
		attackFails(t, st, "/odd"+string(rune('a'+i))+".lua", src)
		seedStillWorks(t, st)
	}
	if out := run(t, st, load(t, st, "/c.lua", `print(type(magnet.cache), type(getmetatable(magnet)))`), nil); out != "tableboolean" {
		t.Fatalf("magnet after the attacks: %q", out)
	}
}

// The lua-magnet README's own repro of a Lua error from Go frames: a
// finalizer that raises, run by an allocation inside a Go-backed function.
func TestSealFinalizerInGoFunc(t *testing.T) {
	st := newState(t)
	c := load(t, st, "/gc.lua", `
		for round = 1, 30 do
			for i = 1, 200 do
				local p = newproxy(true)
				getmetatable(p).__gc = function() error("gc " .. i) end
			end
			pcall(magnet.fs.readdir, "/usr/bin")
			pcall(magnet.fs.stat, "/")
		end
		collectgarbage()`)
	for i := 0; i < 3; i++ {
		st.Run(c, &Request{}) // fails or not, depending on where a finalizer raised
	}
	// As in any Lua 5.1 program, a finalizer's error reaches whatever code
	// runs the collection, here possibly the next compile: let the pending
	// ones raise first.
	drain := load(t, st, "/drain.lua", `for i = 1, 1000 do if pcall(collectgarbage) then break end end`)
	st.Run(drain, &Request{})
	seedStillWorks(t, st)
}

func TestSealCoroutinesAndRecursion(t *testing.T) {
	st := newState(t)
	attackFails(t, st, "/deep.lua", `local function f(n) return 1 + f(n + 1) end f(1)`)
	attackFails(t, st, "/cdeep.lua", `local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x`)
	attackFails(t, st, "/co.lua", `
		local co = coroutine.wrap(function() magnet.header = 5 end) co()`)
	attackFails(t, st, "/fenv.lua", `setfenv(0, {}) error("x")`)
	seedStillWorks(t, st)
}

// A finalizer that raises, left by one run, runs during a later one: its
// error is ignored (and logged) there, so the later run is fine.
func TestSealFinalizerErrorLater(t *testing.T) {
	st := newState(t)
	leave := load(t, st, "/leave.lua", `
		for i = 1, 200 do getmetatable(newproxy(true)).__gc = function() error("gc " .. i) end end
		local p = newproxy(true)
		local mt = getmetatable(p)
		mt.__gc = function() error("kept") end
		mt.__index = function() return "indexed" end
		kept = p
		print(p.x)`)
	if out := run(t, st, leave, nil); out != "indexed" {
		t.Fatalf("leave.lua: %q", out)
	}
	later := load(t, st, "/later.lua", `kept = nil print((pcall(collectgarbage)), " ", (pcall(collectgarbage)))`)
	if out := run(t, st, later, nil); out != "true true" {
		t.Fatalf("a run that collected the finalizers: %q", out)
	}
	seedStillWorks(t, st)
}
