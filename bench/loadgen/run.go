package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// config is one load generator run, from the command line flags.
type config struct {
	network, addr    string
	conns            int
	keepConn         bool
	raw              bool
	duration, warmup time.Duration
	total            int64
	script, expect   string
	query            string
	think            time.Duration // pause after each answer, per connection
}

// result is the JSON line loadgen prints.
type result struct {
	Requests uint64  `json:"requests"`
	Seconds  float64 `json:"seconds"`
	RPS      float64 `json:"rps"`
	P50      float64 `json:"p50_us"`
	P90      float64 `json:"p90_us"`
	P99      float64 `json:"p99_us"`
	Max      float64 `json:"max_us"`
	Failures uint64  `json:"failures"`
	InFlight uint64  `json:"in_flight_at_end"`
	Starved  uint64  `json:"starved"`
	Answered uint64  `json:"answered"`    // every request answered, warm-up included: what the server's CPU time served
	CPU      float64 `json:"loadgen_cpu"` // CPU time of loadgen / run time: near 1, it is the bottleneck
	Conns    int     `json:"conns"`
	KeepConn bool    `json:"keepconn"`
}

// grace is how long a run, once over, waits for the requests in flight
// before it unblocks their connections.
const grace = 200 * time.Millisecond

// shared is the state all connection goroutines see.
type shared struct {
	cfg      config
	req      []byte
	expect   []byte
	measure  time.Time // measurement starts
	stopped  atomic.Bool
	stopCh   chan struct{} // closed by stop
	stopAt   atomic.Int64  // unix nanoseconds of the end of the measurement
	done     atomic.Int64  // measured requests, for -n
	dialer   *dialer
	onceFail sync.Once
}

// client is one connection's goroutine state.
type client struct {
	s        *shared
	hist     histogram
	failures uint64
	inFlight uint64
	starved  uint64
	answered uint64
	body     []byte
	dialer   *dialer
	mu       sync.Mutex
	conn     conn
	br       *bufio.Reader
}

// run drives the server with cfg.conns connections, one goroutine each,
// until the duration is over or cfg.total requests were measured.
func run(cfg config) (*result, error) {
	req := protocol.EncodeRequest(nil, &protocol.Request{
		ID:       1,
		KeepConn: cfg.keepConn,
		Params:   requestParams(cfg.script, cfg.query),
	})
	s := &shared{cfg: cfg, req: req, expect: []byte(cfg.expect), stopCh: make(chan struct{})}
	d, err := newDialer(cfg.network, cfg.addr)
	if err != nil {
		return nil, err
	}
	s.dialer = d
	// Connections block OS threads in read and write: give each its own P
	// so that none waits for the scheduler to hand one over.
	if cfg.raw && runtime.GOMAXPROCS(0) < cfg.conns+1 {
		runtime.GOMAXPROCS(cfg.conns + 1)
	}
	cpu0 := cpuTime()
	start := time.Now()
	s.measure = start.Add(cfg.warmup)

	clients := make([]*client, cfg.conns)
	var wg sync.WaitGroup
	for i := range clients {
		c := &client{s: s, dialer: s.dialer.clone(), body: make([]byte, 0, 4096), br: bufio.NewReaderSize(nil, 64<<10)}
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop()
		}()
	}
	allDone := make(chan struct{})
	go func() {
		wg.Wait()
		close(allDone)
	}()

	if cfg.total > 0 {
		// The goroutine that completes the last request stops the run.
		select {
		case <-s.stopCh:
		case <-allDone:
			s.stop(time.Now())
		}
	} else {
		select {
		case <-time.After(cfg.warmup + cfg.duration):
		case <-allDone:
		}
		s.stop(time.Now())
	}
	select {
	case <-allDone:
	case <-time.After(grace):
		for _, c := range clients {
			c.unblock()
		}
		<-allDone
	}

	end := time.Unix(0, s.stopAt.Load())
	cpu := cpuTime() - cpu0
	var h histogram
	res := &result{Conns: cfg.conns, KeepConn: cfg.keepConn}
	for _, c := range clients {
		h.Merge(&c.hist)
		res.Failures += c.failures
		res.InFlight += c.inFlight
		res.Starved += c.starved
		res.Answered += c.answered
	}
	res.Requests = h.total - res.InFlight
	res.Seconds = end.Sub(s.measure).Seconds()
	if wall := time.Since(start); wall > 0 {
		res.CPU = math.Round(float64(cpu)/float64(wall)*100) / 100
	}
	if res.Seconds > 0 {
		res.RPS = float64(res.Requests) / res.Seconds
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	res.P50 = us(h.Percentile(50))
	res.P90 = us(h.Percentile(90))
	res.P99 = us(h.Percentile(99))
	res.Max = us(h.Max())
	return res, nil
}

// stop ends the measurement at t; the first call wins.
func (s *shared) stop(t time.Time) {
	if s.stopAt.CompareAndSwap(0, t.UnixNano()) {
		s.stopped.Store(true)
		close(s.stopCh)
	}
}

// unblock makes a request stuck in the connection's read or write fail.
func (c *client) unblock() {
	c.mu.Lock()
	if c.conn != nil {
		c.conn.shutdown()
	}
	c.mu.Unlock()
}

func (c *client) setConn(conn conn) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	if conn != nil && c.s.stopped.Load() {
		c.unblock()
	}
}

// loop sends requests until the run stops.
func (c *client) loop() {
	s := c.s
	stdout := func(b []byte) { c.body = append(c.body, b...) }
	defer func() {
		if c.conn != nil {
			c.conn.Close()
		}
	}()
	for !s.stopped.Load() {
		if c.conn == nil {
			conn, err := c.dialer.dialConn(s.cfg.raw)
			if err != nil {
				c.fail(err)
				time.Sleep(10 * time.Millisecond)
				continue
			}
			c.setConn(conn)
			c.br.Reset(conn)
		}
		t0 := time.Now()
		c.body = c.body[:0]
		_, err := c.conn.Write(s.req)
		if err == nil {
			var proto uint8
			_, proto, err = protocol.ReadResponse(c.br, 1, stdout, nil)
			if err == nil && proto != protocol.StatusRequestComplete {
				err = fmt.Errorf("request refused: protocol status %d", proto)
			}
		}
		t1 := time.Now()
		if s.stopped.Load() {
			if end := s.stopAt.Load(); t1.UnixNano() > end {
				c.endInFlight(t0, time.Unix(0, end))
				return
			}
		}
		if err != nil {
			c.fail(err)
			c.closeConn()
			continue
		}
		c.answered++
		if !s.cfg.keepConn {
			c.closeConn()
		}
		if !t1.After(s.measure) {
			continue
		}
		if !bytes.Equal(responseBody(c.body), s.expect) {
			c.fail(fmt.Errorf("unexpected response %q", c.body))
			continue
		}
		c.hist.Record(t1.Sub(t0))
		if s.cfg.total > 0 && s.done.Add(1) >= s.cfg.total {
			s.stop(t1)
		}
		if s.cfg.think > 0 {
			time.Sleep(s.cfg.think)
		}
	}
}

// endInFlight records a request that was in flight when the run ended at
// end: its wait so far counts as its latency. One sent before the
// measurement began and unanswered through all of it is starved.
func (c *client) endInFlight(t0, end time.Time) {
	if !t0.Before(end) {
		return
	}
	c.hist.Record(end.Sub(t0))
	c.inFlight++
	if t0.Before(c.s.measure) {
		c.starved++
	}
}

func (c *client) closeConn() {
	conn := c.conn
	c.setConn(nil)
	conn.Close()
}

// fail counts a failure; the first one is reported on stderr.
func (c *client) fail(err error) {
	c.failures++
	c.s.onceFail.Do(func() {
		fmt.Fprintf(os.Stderr, "loadgen: first failure: %v\n", err)
	})
}

// responseBody returns what follows the CGI header block of a response.
func responseBody(out []byte) []byte {
	if i := bytes.Index(out, []byte("\r\n\r\n")); i >= 0 {
		return out[i+4:]
	}
	if i := bytes.Index(out, []byte("\n\n")); i >= 0 {
		return out[i+2:]
	}
	return out
}

// errEOF is io.ErrUnexpectedEOF: a response never ends at a read boundary.
var errEOF = io.ErrUnexpectedEOF

// cpuTime returns the user and system CPU time of the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
