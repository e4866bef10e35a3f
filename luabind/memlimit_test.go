package luabind

import (
	"strings"
	"testing"
)

const testLimit = 32 << 20

// overLimit runs src with the memory limit set and wants a memory error.
func overLimit(t *testing.T, st *State, name, src string) {
	t.Helper()
	c := load(t, st, name, src)
	err := st.Run(c, &Request{})
	se, ok := err.(*ScriptError)
	// LuaJIT refuses a string over its maximum size before allocating
	jitMax := LuaJIT && ok && strings.Contains(se.Message, "not enough memory")
	if !ok || !jitMax && (!se.Memory || !strings.Contains(se.Message, "memory limit")) {
		t.Fatalf("%s: got %v, want a memory limit error", name, err)
	}
	if st.Unsound() {
		t.Fatalf("%s: state unsound after a request that kept nothing", name)
	}
	if used := st.MemoryBytes(); used > testLimit/4 {
		t.Fatalf("%s: heap %d bytes after the full collection", name, used)
	}
}

func TestMemoryLimit(t *testing.T) {
	st := newState(t)
	st.SetMemoryLimit(testLimit)
	overLimit(t, st, "/rep.lua", `local s = string.rep("ab", 2^30) print(#s)`)
	overLimit(t, st, "/double.lua", `local s = "x" while true do s = s .. s end`)
	overLimit(t, st, "/table.lua", `local t = {} for i = 1, 1e9 do t[i] = i end`)
	// caught by the script: the request fails all the same
	overLimit(t, st, "/caught.lua", `pcall(function() local s = "x" while true do s = s .. s end end) print("Content-Type: text/plain\r\n\r\nfine")`)
	// a Go-backed function's results run into the limit as well
	overLimit(t, st, "/go.lua", `local t = {} for i = 1, 1e9 do t[i] = magnet.fs.stat("/") end`)
	seedStillWorks(t, st)
}

func TestMemoryLimitUnsound(t *testing.T) {
	st := newState(t)
	st.SetMemoryLimit(testLimit)
	c := load(t, st, "/hoard.lua", `hoard = hoard or {} for i = 1, 1e9 do hoard[#hoard + 1] = string.rep("x", 1000) .. i end`)
	err := st.Run(c, &Request{})
	if se, ok := err.(*ScriptError); !ok || !se.Memory {
		t.Fatalf("got %v, want a memory limit error", err)
	}
	if !st.Unsound() {
		t.Fatalf("state holds %d bytes over a %d limit and is not unsound", st.MemoryBytes(), testLimit)
	}
}

func TestMemoryCount(t *testing.T) {
	st := newState(t)
	c := load(t, st, "/count.lua", `collectgarbage() print(collectgarbage("count") * 1024)`)
	out := run(t, st, c, nil)
	// the allocator's count is the heap Lua itself reports
	if got := st.MemoryBytes(); out == "" || got == 0 || strings.TrimSpace(out) == "0" {
		t.Fatalf("count %q, MemoryBytes %d", out, got)
	}
	st.SetMemoryLimit(0)
	big := load(t, st, "/big.lua", `local s = string.rep("x", 64 * 2^20) print(#s)`)
	if out := run(t, st, big, nil); out != "67108864" {
		t.Fatalf("no limit: %q", out)
	}
}
