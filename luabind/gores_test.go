package luabind

import (
	"strconv"
	"strings"
	"testing"
)

// A Go-backed function called from a __gc finalizer while C pushes another
// call's results (which sit in the state's one result buffer) gets a
// result box of its own: both calls' results arrive whole.
func TestGoFuncNestedInPush(t *testing.T) {
	st := newState(t)
	pushing, nested := false, 0
	item := func(i int) string { return strings.Repeat("x", 40) + strconv.Itoa(i) }
	st.Register("t", "list", func(c *Call) (int, error) {
		n := int(c.ArgNumber(1))
		c.NewTable(n, 0)
		for i := 1; i <= n; i++ {
			c.PushString(item(i))
			c.SetIndex(-2, i)
		}
		pushing = true // until t.done: C pushes the list meanwhile
		return 1, nil
	})
	st.Register("t", "done", func(c *Call) (int, error) {
		pushing = false
		return 0, nil
	})
	st.Register("t", "id", func(c *Call) (int, error) {
		if pushing {
			nested++
		}
		c.PushBytes(c.ArgBytes(1))
		c.PushNumber(c.ArgNumber(2))
		return 2, nil
	})
	out := run(t, st, load(t, st, "/nested.lua", `
		local bad = 0
		for round = 1, 50 do
			for i = 1, 100 do
				local p = newproxy(true)
				getmetatable(p).__gc = function()
					local s, n = t.id("k" .. i, i)
					if s ~= "k" .. i or n ~= i then bad = bad + 1 end
				end
			end
			local r = t.list(500)
			t.done()
			for i = 1, 500 do
				if r[i] ~= string.rep("x", 40) .. i then bad = bad + 1 end
			end
		end
		collectgarbage()
		io.write(bad)`), nil)
	if out != "0" {
		t.Fatalf("%s results were wrong", out)
	}
	if nested == 0 {
		t.Fatal("no finalizer called a Go function while C pushed a list: the case was not exercised")
	}
	t.Logf("%d nested calls", nested)
}
