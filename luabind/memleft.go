package luabind

/*
#include "magnet.h"
*/
import "C"

// MemoryLeft is how far the Lua heap may still grow under the memory
// limit (SetMemoryLimit), and false when there is none. A Go function that
// holds data for the script outside the Lua heap (a query's whole result)
// keeps it within this, so that the limit bounds what a script can make
// its worker hold, in Go as in Lua.
func (c *Call) MemoryLeft() (uint64, bool) {
	limit, used := uint64(c.st.s.mem_limit), uint64(c.st.s.mem_used)
	switch {
	case limit == 0:
		return 0, false
	case used >= limit:
		return 0, true
	}
	return limit - used, true
}
