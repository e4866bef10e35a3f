package worker

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// Bounded responses and bodies: output flushed past the output buffer and
// on io.stdout:flush()/magnet.flush(), headers final once sent, a client
// that stops reading dropped after SendTimeout, and bodies over MaxBody
// answered 413. The memory tests read this process's peak RSS (VmHWM),
// reset first where the kernel allows, with the worker running in it.

func flushScripts(t testing.TB, dir string) map[string]string {
	t.Helper()
	src := map[string]string{
		"sse.lua": `
			magnet.header["Content-Type"] = "text/event-stream"
			print("data: one\n\n")
			if os.getenv("QUERY_STRING") == "io" then io.stdout:flush() else magnet.flush() end
			local l = io.read("*l")
			print("data: ", l, "\n\n")`,
		"late.lua": `
			magnet.header["Content-Type"] = "text/plain"
			print("sent;")
			magnet.flush()
			print(select(2, pcall(function() magnet.header["X-Late"] = "1" end)), ";")
			print(select(2, pcall(function() magnet.status = 404 end)), ";")
			print(select(2, pcall(function() magnet.header = {} end)), ";")
			print(magnet.header["Content-Type"], ";")
			if os.getenv("QUERY_STRING") == "fail" then error("failed after the headers") end
			print("end")`,
		"raw.lua": `
			print("Content-Type: text/plain\r\n\r\nraw;")
			io.stdout:flush()
			print(select(2, pcall(function() magnet.status = 500 end)))`,
		// n KiB in 1 KiB prints
		"kib.lua": `
			local s = string.rep("0123456789abcdef", 64)
			print("Content-Type: text/plain\r\n\r\n")
			for i = 1, tonumber(os.getenv("QUERY_STRING")) do io.write(s) end`,
		"readall.lua": `
			local flush = os.getenv("QUERY_STRING") == "flush"
			magnet.header["Content-Type"] = "text/plain"
			if flush then magnet.flush() end
			local b, err = io.read("*a")
			print(b and #b or "nil", ";", err)`,
		"reqbody.lua": `
			magnet.header["Content-Type"] = "text/plain"
			print(#magnet.request.body())`,
	}
	paths := map[string]string{}
	for name, s := range src {
		paths[name] = writeScript(t, dir, name, s)
	}
	return paths
}

// TestFlushServerSentEvents: an event flushed by the script reaches the
// client while the script still runs; it waits for the client's answer
// (a body line the test sends only after it saw the event).
func TestFlushServerSentEvents(t *testing.T) {
	sock, _ := startServer(t, Config{})
	s := flushScripts(t, t.TempDir())
	for _, how := range []string{"magnet", "io"} {
		c := dialRaw(t, sock)
		c.send(t, head(1, false, s["sse.lua"], protocol.Pair{Name: "QUERY_STRING", Value: how}))
		var got []byte
		for !bytes.Contains(got, []byte("data: one\n\n")) {
			rec, err := c.readRecord()
			if err != nil {
				t.Fatalf("%s: waiting for the first event: %v (got %q)", how, err, got)
			}
			if rec.typ != protocol.TypeStdout || len(rec.content) == 0 {
				t.Fatalf("%s: record type %d (%d bytes) before the first event", how, rec.typ, len(rec.content))
			}
			got = append(got, rec.content...)
		}
		if !bytes.HasPrefix(got, []byte("Status: 200 OK\r\n")) || !bytes.Contains(got, []byte("Content-Type: text/event-stream\r\n")) {
			t.Fatalf("%s: headers %q", how, got)
		}
		c.send(t, stdin(1, []byte("two\n")), stdinEnd(1))
		r := c.readEnd(t, 1)
		if string(r.stdout) != "data: two\n\n" {
			t.Fatalf("%s: rest of the stream %q", how, r.stdout)
		}
	}
}

// TestFlushHeadersFinal: after a flush, header and status writes raise
// "headers already sent", the headers read back, and an error ends the
// response with its STDERR instead of a 500.
func TestFlushHeadersFinal(t *testing.T) {
	sock, _ := startServer(t, Config{})
	s := flushScripts(t, t.TempDir())
	c := dial(t, sock)
	const sent = "magnet: headers already sent"
	status, body, _ := get(t, c, s["late.lua"], true)
	want := "sent;" + strings.Repeat(sent+";", 3) + "text/plain;end"
	if status != 200 || !strings.Contains(body, ";end") || strings.Count(body, sent) != 3 || !strings.Contains(body, "text/plain;") {
		t.Fatalf("late writes: %d %q, want %q with script positions", status, body, want)
	}
	status, body, resp := get(t, c, s["late.lua"], true, protocol.Pair{Name: "QUERY_STRING", Value: "fail"})
	if status != 200 || !strings.HasPrefix(body, "sent;") || strings.Contains(body, "end") ||
		!bytes.Contains(resp.Stderr, []byte("failed after the headers")) {
		t.Fatalf("failure after the headers: %d %q stderr %q", status, body, resp.Stderr)
	}
	status, body, _ = get(t, c, s["raw.lua"], true)
	if status != 200 || !strings.HasPrefix(body, "raw;") || !strings.Contains(body, sent) {
		t.Fatalf("raw CGI output: %d %q", status, body)
	}
	// the next request starts over
	status, body, _ = get(t, c, s["readall.lua"], true)
	if status != 200 || body != "0;nil" {
		t.Fatalf("after flushed responses: %d %q", status, body)
	}
}

// TestSmallResponseNotFlushed: a response under the output buffer is
// still one STDOUT record; one over it arrives complete.
func TestSmallResponseNotFlushed(t *testing.T) {
	sock, _ := startServer(t, Config{})
	s := flushScripts(t, t.TempDir())
	for _, kib := range []int{1, 60, 64, 65, 1000} {
		c := dialRaw(t, sock)
		c.send(t, head(1, false, s["kib.lua"], protocol.Pair{Name: "QUERY_STRING", Value: strconv.Itoa(kib)}), stdinEnd(1))
		r := c.readEnd(t, 1)
		st, body := r.status(t)
		if st != 200 || body != strings.Repeat("0123456789abcdef", 64*kib) {
			t.Fatalf("%d KiB: status %d, %d bytes", kib, st, len(body))
		}
		if kib == 1 && r.stdoutRecords != 1 {
			t.Fatalf("1 KiB in %d STDOUT records", r.stdoutRecords)
		}
	}
}

// peakReset resets this process's VmHWM where the kernel allows it and
// returns the baseline growth is measured from: the current RSS after a
// reset, or the current peak when the reset failed.
func peakReset(t *testing.T) uint64 {
	t.Helper()
	debug.FreeOSMemory() // the garbage of earlier tests must not count
	if os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil {
		return procStatus(t, "VmRSS")
	}
	return procStatus(t, "VmHWM")
}

func procStatus(t *testing.T, field string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, l)
			}
			return n << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

// streamEnd reads the response to request 1 without keeping it: it checks
// that the body repeats pattern and returns its length.
func streamEnd(t *testing.T, c *rawConn, pattern string) int64 {
	t.Helper()
	var n int64
	headers := true
	buf := make([]byte, protocol.HeaderLen+protocol.MaxContentLen+255) // allocation-free: the test must not grow RSS
	for {
		if _, err := io.ReadFull(c.br, buf[:protocol.HeaderLen]); err != nil {
			t.Fatalf("after %d body bytes: %v", n, err)
		}
		h := protocol.ParseHeader(buf[:protocol.HeaderLen])
		content := buf[protocol.HeaderLen : protocol.HeaderLen+int(h.ContentLength)]
		if _, err := io.ReadFull(c.br, buf[protocol.HeaderLen:protocol.HeaderLen+int(h.ContentLength)+int(h.PaddingLength)]); err != nil {
			t.Fatalf("after %d body bytes: %v", n, err)
		}
		switch h.Type {
		case protocol.TypeEndRequest:
			return n
		case protocol.TypeStdout:
			p := content
			if headers {
				i := bytes.Index(p, []byte("\r\n\r\n"))
				if i < 0 {
					t.Fatalf("headers split across records: %q", p)
				}
				p, headers = p[i+4:], false
			}
			for len(p) > 0 {
				off := int(n % int64(len(pattern)))
				k := min(len(p), len(pattern)-off)
				if string(p[:k]) != pattern[off:off+k] {
					t.Fatalf("body differs at byte %d", n)
				}
				p, n = p[k:], n+int64(k)
			}
		default:
			t.Fatalf("record type %d: %q", h.Type, content)
		}
	}
}

// TestLargeResponseMemory: a 100 MiB response, read slowly, costs the
// worker a bounded amount of memory.
func TestLargeResponseMemory(t *testing.T) {
	sock, _ := startServer(t, Config{})
	s := flushScripts(t, t.TempDir())
	const kib = 100 << 10
	base := peakReset(t)
	c := dialRaw(t, sock)
	c.SetDeadline(time.Now().Add(5 * time.Minute))
	c.send(t, head(1, false, s["kib.lua"], protocol.Pair{Name: "QUERY_STRING", Value: strconv.Itoa(kib)}), stdinEnd(1))
	c.br.Reset(&slowReader{r: c.Conn})
	if n := streamEnd(t, c, "0123456789abcdef"); n != kib<<10 {
		t.Fatalf("got %d bytes, want %d", n, kib<<10)
	}
	peak := procStatus(t, "VmHWM")
	t.Logf("100 MiB response: peak RSS %d KiB over the baseline", (int64(peak)-int64(base))>>10)
	if peak > base+24<<20 {
		t.Fatalf("peak RSS grew by %d MiB for a 100 MiB response", (peak-base)>>20)
	}
}

// TestNeverReadingClient: a 1 GiB response to a client that reads nothing
// is dropped after SendTimeout, the script stops, memory stays bounded and
// the worker serves the next request.
func TestNeverReadingClient(t *testing.T) {
	sock, srv := startServer(t, Config{SendTimeout: 500 * time.Millisecond})
	s := flushScripts(t, t.TempDir())
	base := peakReset(t)
	start := time.Now()
	c := dialRaw(t, sock)
	c.send(t, head(1, false, s["kib.lua"], protocol.Pair{Name: "QUERY_STRING", Value: strconv.Itoa(1 << 20)}), stdinEnd(1))
	for srv.Counters().SendTimeouts == 0 {
		if time.Since(start) > 60*time.Second {
			t.Fatal("the client that reads nothing was not dropped")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("dropped after %v", time.Since(start).Round(time.Millisecond))
	n, _ := io.Copy(io.Discard, c.Conn)
	if n >= 1<<30 {
		t.Fatalf("the client got the whole response")
	}
	other := dial(t, sock)
	if status, body, _ := get(t, other, s["readall.lua"], true); status != 200 || body != "0;nil" {
		t.Fatalf("after the dropped client: %d %q", status, body)
	}
	peak := procStatus(t, "VmHWM")
	t.Logf("1 GiB response, never read: %d bytes delivered, peak RSS %d KiB over the baseline", n, (int64(peak)-int64(base))>>10)
	if peak > base+24<<20 {
		t.Fatalf("peak RSS grew by %d MiB", (peak-base)>>20)
	}
}

// streamBody sends request 1's body in 64 KiB records until stop is
// closed or the connection fails; it returns the bytes sent.
func streamBody(c *rawConn, limit int64, stop <-chan struct{}) <-chan int64 {
	done := make(chan int64, 1)
	rec := stdin(1, bytes.Repeat([]byte("b"), 64<<10-8))
	go func() {
		var n int64
		for n < limit {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if _, err := c.Write(rec); err != nil {
				break
			}
			n += int64(len(rec))
		}
		done <- n
	}()
	return done
}

// TestBodyTooLarge: a 1 GiB body announced by CONTENT_LENGTH is answered
// 413 without running the script or buffering the body; a body without a
// length that grows past the limit is cut with a 413, or, once the script
// flushed, reported to it by io.read; a body at the limit is read whole.
func TestBodyTooLarge(t *testing.T) {
	sock, _ := startServer(t, Config{MaxBody: 1 << 20})
	s := flushScripts(t, t.TempDir())

	base := peakReset(t)
	c := dialRaw(t, sock)
	c.send(t, head(1, false, s["readall.lua"], protocol.Pair{Name: "CONTENT_LENGTH", Value: strconv.Itoa(1 << 30)}))
	stop := make(chan struct{})
	sent := streamBody(c, 1<<30, stop)
	r := c.readEnd(t, 1)
	close(stop)
	if st, body := r.status(t); st != 413 || body != "Content Too Large\n" {
		t.Fatalf("CONTENT_LENGTH 1 GiB: %d %q", st, body)
	}
	c.expectClosed(t)
	n := <-sent
	peak := procStatus(t, "VmHWM")
	t.Logf("1 GiB body: 413 after %d body bytes sent, peak RSS %d KiB over the baseline", n, (int64(peak)-int64(base))>>10)
	if n >= 1<<30 || peak > base+24<<20 {
		t.Fatalf("%d body bytes sent, peak RSS grew by %d MiB", n, (peak-base)>>20)
	}

	for _, tc := range []struct {
		script, query string
		size          int
		status        int
		body          string
	}{
		{"readall.lua", "", 4 << 20, 413, "Content Too Large\n"},
		{"reqbody.lua", "", 4 << 20, 413, "Content Too Large\n"},
		{"readall.lua", "flush", 4 << 20, 200, "nil;magnet: request body too large"},
		{"readall.lua", "", 1 << 20, 200, fmt.Sprint(1<<20, ";nil")},
		{"reqbody.lua", "", 1 << 20, 200, fmt.Sprint(1 << 20)},
	} {
		for _, keep := range []bool{false, true} {
			c := dialRaw(t, sock)
			c.send(t, head(1, keep, s[tc.script], protocol.Pair{Name: "QUERY_STRING", Value: tc.query}))
			werr := make(chan error, 1)
			go func() { // the whole body, as a web server sends it
				_, err := c.Write(cat(stdin(1, bytes.Repeat([]byte("b"), tc.size)), stdinEnd(1)))
				werr <- err
			}()
			r := c.readEnd(t, 1)
			st, body := r.status(t)
			if st != tc.status || body != tc.body {
				t.Fatalf("%s?%s with %d bytes, keep %v: %d %q", tc.script, tc.query, tc.size, keep, st, body)
			}
			if err := <-werr; err != nil {
				t.Fatalf("%s?%s: writing the body: %v", tc.script, tc.query, err)
			}
			if !keep {
				c.expectClosed(t)
				continue
			}
			c.send(t, head(2, true, s["readall.lua"]), stdinEnd(2))
			if st, body := c.readEnd(t, 2).status(t); st != 200 || body != "0;nil" {
				t.Fatalf("%s?%s: next request on the connection: %d %q", tc.script, tc.query, st, body)
			}
		}
	}
}
