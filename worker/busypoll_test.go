package worker

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// TestBusyPoll: with busy polling, one keep-alive connection (the
// sole-connection read), several at once (the epoll poll), and a
// connection per request are all answered, none starves, and the worker
// still stops promptly (the test's cleanup waits for it).
func TestBusyPoll(t *testing.T) {
	sock, srv := startServer(t, Config{BusyPoll: 200 * time.Microsecond})
	root, _ := filepath.Abs("../examples")
	script := filepath.Join(root, "123.lua")

	c, err := protocol.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if _, body, _ := get(t, c, script, true); body != "123" {
			t.Fatalf("sole connection, request %d: got %q", i, body)
		}
		if i%10 == 0 { // past the poll: asleep, then woken
			waitBlocked(t, "the worker asleep after polling", inEpollWait(srv))
		}
	}
	c.Close()

	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for k := 0; k < 8; k++ {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			keep := k%2 == 0
			var c *protocol.Client
			for i := 0; i < 50; i++ {
				if c == nil {
					var err error
					if c, err = protocol.Dial("unix", sock); err != nil {
						errs <- err.Error()
						return
					}
				}
				resp, err := c.Do(&protocol.Request{KeepConn: keep, Params: []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}}})
				if err != nil {
					errs <- err.Error()
					return
				}
				if _, _, body, _ := protocol.ParseCGI(resp.Stdout); string(body) != "123" {
					errs <- "got " + string(body)
					return
				}
				if !keep {
					c.Close()
					c = nil
				}
			}
			if c != nil {
				c.Close()
			}
		}(k)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}
