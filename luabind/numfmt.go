package luabind

/*
#include "magnet.h"
extern unsigned long mg_numfmt_fast;
*/
import "C"

// numfmtFast is how many numbers numfmt.c has written for Lua.
func numfmtFast() uint64 { return uint64(C.mg_numfmt_fast) }
