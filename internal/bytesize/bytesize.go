// Package bytesize parses the memory sizes given on the command line
// (--max-rss, --memory-limit) the way PHP's memory_limit and uWSGI's
// reload-on-rss are written: a whole number of bytes, or one followed by
// K, M, G or T (binary multiples; "KiB", "MB" and lower case are accepted
// too).
package bytesize

import (
	"fmt"
	"strconv"
	"strings"
)

// Parse returns the number of bytes s names: "0", "512K", "128M", "1GiB".
func Parse(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRight(t, "KMGTkmgtiIbB")
	unit := strings.ToUpper(t[len(num):])
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	shift := map[string]uint{"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
	sh, ok := shift[unit]
	n, err := strconv.ParseUint(strings.TrimSpace(num), 10, 64)
	if !ok || err != nil || num == "" {
		return 0, fmt.Errorf("bad size %q: want bytes, or a number with K, M, G or T", s)
	}
	if n > (^uint64(0))>>sh {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n << sh, nil
}
