package luabind

/*
#include <stdint.h>
#include <time.h>
#include "magnet.h"

static int64_t mg_remaining_ns(mg_state *S) {
	struct timespec ts;
	if (!S->deadline_ns) return INT64_MIN;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return S->deadline_ns - ((int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}
*/
import "C"

import (
	"math"
	"time"
)

// Remaining is the time left to the running request under SetTimeout, and
// false when the run has no time limit. A Go function that blocks (a
// database query) bounds its wait by it, since the time limit hook cannot
// stop a run while it is inside Go. It may be zero or negative.
func (c *Call) Remaining() (time.Duration, bool) {
	ns := int64(C.mg_remaining_ns(c.st.s))
	if ns == math.MinInt64 {
		return 0, false
	}
	return time.Duration(ns), true
}
