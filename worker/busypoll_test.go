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

// The back-off: misses lengthen the run of answers without a poll, up to
// maxPollSkip; a hit ends it.
func TestPollBackoff(t *testing.T) {
	var s Server
	polls := func(answers int) (n int) {
		for i := 0; i < answers; i++ {
			s.busy = true
			if s.pollBegin() {
				n++
				s.pollEnd(false)
			}
		}
		return n
	}
	// 1 + 2 + 4 + ... + 256 answers skipped after the first 9 misses.
	if n := polls(9 + 511); n != 9 {
		t.Errorf("%d polls in the first 520 answers without a hit, want 9", n)
	}
	if n := polls(10 * (maxPollSkip + 1)); n != 10 {
		t.Errorf("%d polls in %d answers at the longest back-off, want 10", n, 10*(maxPollSkip+1))
	}
	for s.pollSkip > 0 {
		s.busy = true
		s.pollBegin()
	}
	s.busy = true
	if !s.pollBegin() {
		t.Fatal("no poll after the back-off")
	}
	s.pollEnd(true)
	for i := 0; i < 100; i++ {
		s.busy = true
		if !s.pollBegin() {
			t.Fatalf("answer %d after a hit not polled", i)
		}
		s.pollEnd(true)
	}
	s.busy = false
	if s.pollBegin() {
		t.Error("polled without an answer")
	}
}
