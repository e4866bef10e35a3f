package worker

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// TestRedis: a client kept in _G serves every request of the worker.
func TestRedis(t *testing.T) {
	r := testutil.StartRedis(t, "", 0)
	dir := t.TempDir()
	script := writeScript(t, dir, "count.lua", fmt.Sprintf(`
R = R or assert(magnet.redis.connect(%q))
local n, err = R:incr("hits")
print("Content-Type: text/plain\r\n\r\n", n or err)
`, r.Socket))
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir)})
	c := dial(t, sock)
	for i := 1; i <= 5; i++ {
		if status, body, _ := get(t, c, script, true); status != 200 || body != strconv.Itoa(i) {
			t.Fatalf("request %d: %d %q", i, status, body)
		}
	}
}
