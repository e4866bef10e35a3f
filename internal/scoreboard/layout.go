// Package scoreboard is the shared-memory state of a pool of workers.
//
// The master creates a board (a memfd holding a header and one slot per
// worker), maps it, and hands it to each worker as an inherited file
// descriptor named by the MAGNET_SCOREBOARD environment variable. A worker
// maps the same memory and writes only its own slot; any process that maps
// the board can read every slot and the pool-level header.
//
// Every slot and the header are guarded by a sequence lock: the single
// writer makes the sequence odd, writes, and makes it even again; readers
// retry until they copy the memory between two equal, even sequence values.
// The per-request calls of a worker are plain memory writes framed by two
// atomic additions: they neither allocate nor make a system call.
package scoreboard

// The board is an array of 64-bit words. All offsets below are word indexes.
const (
	magic   = 0x3142_5354_454e_474d // "MGNETSB1" as little-endian bytes
	version = 2

	headerBytes = 1024
	slotBytes   = 1024
	headerWords = headerBytes / 8
	slotWords   = slotBytes / 8
)

// Header words.
const (
	hMagic = iota
	hVersion
	hSlots
	hSlotBytes
	hSeq
	hStart              // pool start, wall clock, Unix nanoseconds
	hListenQueue        // connections waiting in the listen queue now
	hMaxListenQueue     // largest listen queue seen since start
	hListenQueueLen     // size of the listen queue (backlog)
	hMaxActive          // most workers busy at once (atomic: workers update it)
	hMaxChildrenReached // times every worker was found busy (atomic)
	hActive             // workers busy now (atomic: Begin adds, End subtracts)
	hLive               // slots holding a worker (master)
	hSlowThreshold      // the workers' slow log timeout, nanoseconds; 0: off
	hBaseAccepted       // totals of workers that left their slot
	hBaseRequests
	hBaseSlow
	hPoolLen
	hPMLen
	hPool          // poolBytes bytes
	hPM            = hPool + poolBytes/8
	hWatchdogKills = hPM + pmBytes/8    // workers killed for running a request too long (master)
	hRSSRecycles   = hWatchdogKills + 1 // workers that exited over --max-rss (atomic: workers add)
	hBaseConns     = hRSSRecycles + 1   // connsWords totals of workers that left their slot
	hEnd           = hBaseConns + connsWords
)

// connsWords is the number of words of a Conns: the per-worker counts,
// each stored on its own, and the pool's totals of departed workers.
const connsWords = 6

// Sizes of the text fields, in bytes (multiples of 8).
const (
	poolBytes   = 64
	pmBytes     = 16
	methodBytes = 16
	uriBytes    = 512
	scriptBytes = 256
	userBytes   = 32
)

// Slot words. The master writes sPID and sStarted; the worker writes the rest.
const (
	sSeq          = iota
	sPID          // pid the master started in this slot; 0: free
	sStarted      // when the master started it, Unix nanoseconds
	sWorkerPID    // pid of the worker that attached; != sPID: still starting
	sState        // State, valid once the worker attached
	sRequests     // requests served
	sAccepted     // connections accepted
	sSlow         // requests written to the slow log (atomic: any goroutine adds)
	sRequestStart // start of the current or last request, Unix nanoseconds
	sDuration     // duration of the last finished request, nanoseconds
	sMemory       // memory used by the last request, bytes
	sCPU          // CPU time of the last request, nanoseconds (0: not measured)
	sTimeout      // the worker's own request terminate timeout, nanoseconds; 0: none
	sContentLength
	sMethodLen
	sURILen
	sScriptLen
	sUserLen
	sMethod  // methodBytes bytes
	sURI     = sMethod + methodBytes/8
	sScript  = sURI + uriBytes/8
	sUser    = sScript + scriptBytes/8
	sConns   = sUser + userBytes/8 // connsWords counts (Conns), each stored on its own, atomically
	sHolding = sConns + connsWords // connections the worker holds now (atomic; a gauge)
	sEnd     = sHolding + 1
)

// Compile-time checks that the fields fit their areas.
var (
	_ [headerWords - hEnd]struct{}
	_ [slotWords - sEnd]struct{}
)
