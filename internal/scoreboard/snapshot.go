package scoreboard

import (
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"
)

// Snapshot is a consistent copy of one slot.
type Snapshot struct {
	PID           int           // worker pid; 0 for a free slot
	State         State         // what the worker is doing
	Started       time.Time     // when the master started the worker
	Requests      uint64        // requests served
	Accepted      uint64        // connections accepted
	Slow          uint64        // requests written to the slow log
	RequestStart  time.Time     // start of the current or last request; zero before the first
	LastDuration  time.Duration // duration of the current request, or of the last one when idle
	Method        string        // request method of the current or last request
	URI           string        // request URI (truncated to 512 bytes)
	Script        string        // script file name (truncated to 256 bytes)
	User          string        // authenticated user, if any
	ContentLength int64         // request body length announced by the client
	LastMemory    uint64        // memory used by the last request, bytes
	LastCPU       time.Duration // CPU time of the last request; 0 when not measured
	// RequestTimeout is the worker's own request terminate timeout; 0: none.
	RequestTimeout time.Duration
	Conns          Conns // connection counts
}

// Conns are what a worker did to contain its connections, and the scripts
// it checks by stat. The words follow this order on the board.
type Conns struct {
	IdleClosed   uint64 // keep-alive connections closed after the idle timeout
	ReadTimeouts uint64 // requests whose params or body stopped arriving
	SendTimeouts uint64 // clients dropped for not taking a response
	Refused      uint64 // requests over the protocol limits, answered 431
	AcceptPaused uint64 // times the worker stopped accepting (cap or EMFILE)
	StatChecked  uint64 // cached scripts checked by stat, not inotify (a gauge)
}

// Add adds o's counts to c; StatChecked, a gauge, is summed too.
func (c *Conns) Add(o Conns) {
	c.IdleClosed += o.IdleClosed
	c.ReadTimeouts += o.ReadTimeouts
	c.SendTimeouts += o.SendTimeouts
	c.Refused += o.Refused
	c.AcceptPaused += o.AcceptPaused
	c.StatChecked += o.StatChecked
}

func conns(w []uint64) Conns {
	return Conns{w[0], w[1], w[2], w[3], w[4], w[5]}
}

// Header is a consistent copy of the pool-level figures of a board.
type Header struct {
	Pool               string        // pool name
	PM                 string        // process manager, e.g. "static"
	Start              time.Time     // when the pool started
	ListenQueue        uint64        // connections waiting in the listen queue
	MaxListenQueue     uint64        // most connections seen waiting
	ListenQueueLen     uint64        // size of the listen queue
	MaxActive          uint64        // most workers busy at once
	MaxChildrenReached uint64        // times every worker was found busy
	Active             uint64        // workers busy now
	Live               uint64        // slots holding a worker
	SlowThreshold      time.Duration // the slow log timeout, for the page; 0: off or unknown
	WatchdogKills      uint64        // workers killed for running a request too long
	RSSRecycles        uint64        // workers that exited because their RSS passed the limit

	// Totals of the workers that already left their slots; add the live
	// slots' counters to get the pool's totals. Conns.StatChecked is
	// always 0 here: it is a gauge of the live workers.
	Accepted, Requests, Slow uint64
	Conns                    Conns
}

// stuck is how long a reader waits on a sequence that stays odd before it
// takes the writer for dead (a worker killed inside a write never finishes
// it) and returns what it copies.
const stuck = time.Second

// read copies src into dst word by word with atomic loads, under the
// sequence lock whose counter is src[seq].
func read(dst, src []uint64, seq int) {
	var (
		odd   uint64    // the odd sequence value being waited on
		since time.Time // when waiting on it started
	)
	for try := 0; ; try++ {
		s1 := atomic.LoadUint64(&src[seq])
		dead := false
		if s1&1 != 0 {
			if s1 != odd {
				odd, since = s1, time.Time{}
			}
			if try%64 == 63 {
				if since.IsZero() {
					since = time.Now()
				} else if time.Since(since) > stuck {
					dead = true
				}
				runtime.Gosched()
			}
			if !dead {
				continue
			}
		}
		for i := range src {
			dst[i] = atomic.LoadUint64(&src[i])
		}
		if dead || atomic.LoadUint64(&src[seq]) == s1 {
			return
		}
	}
}

// Snapshot returns a consistent copy of slot i.
func (b *Board) Snapshot(i int) Snapshot {
	var w [slotWords]uint64
	read(w[:], b.slot(i), sSeq)
	s := Snapshot{PID: int(w[sPID])}
	if s.PID == 0 {
		return s
	}
	s.Started = unixNano(w[sStarted])
	s.State = Starting
	if w[sWorkerPID] != w[sPID] {
		return s
	}
	s.State = State(w[sState])
	s.Requests = w[sRequests]
	s.Accepted = w[sAccepted]
	s.Slow = w[sSlow]
	s.RequestStart = unixNano(w[sRequestStart])
	s.LastDuration = time.Duration(w[sDuration])
	if s.State == Busy {
		s.LastDuration = max(time.Since(s.RequestStart), 0)
	}
	s.LastMemory = w[sMemory]
	s.LastCPU = time.Duration(w[sCPU])
	s.RequestTimeout = time.Duration(w[sTimeout])
	s.Conns = conns(w[sConns:])
	s.ContentLength = int64(w[sContentLength])
	s.Method = text(w[:], sMethod, w[sMethodLen], methodBytes)
	s.URI = text(w[:], sURI, w[sURILen], uriBytes)
	s.Script = text(w[:], sScript, w[sScriptLen], scriptBytes)
	s.User = text(w[:], sUser, w[sUserLen], userBytes)
	return s
}

// Header returns a consistent copy of the board's pool-level figures.
func (b *Board) Header() Header {
	var w [headerWords]uint64
	read(w[:], b.words[:headerWords], hSeq)
	return Header{
		Pool:               text(w[:], hPool, w[hPoolLen], poolBytes),
		PM:                 text(w[:], hPM, w[hPMLen], pmBytes),
		Start:              unixNano(w[hStart]),
		ListenQueue:        w[hListenQueue],
		MaxListenQueue:     w[hMaxListenQueue],
		ListenQueueLen:     w[hListenQueueLen],
		MaxActive:          w[hMaxActive],
		MaxChildrenReached: w[hMaxChildrenReached],
		Active:             w[hActive],
		Live:               w[hLive],
		SlowThreshold:      time.Duration(w[hSlowThreshold]),
		WatchdogKills:      w[hWatchdogKills],
		RSSRecycles:        w[hRSSRecycles],
		Accepted:           w[hBaseAccepted],
		Requests:           w[hBaseRequests],
		Slow:               w[hBaseSlow],
		Conns:              conns(w[hBaseConns:]),
	}
}

// text returns the n bytes (at most size) stored from word index i of w.
func text(w []uint64, i int, n uint64, size int) string {
	n = min(n, uint64(size))
	if n == 0 {
		return ""
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&w[i])), size)
	return string(b[:n])
}

func unixNano(ns uint64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}
