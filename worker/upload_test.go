package worker

import (
	"bytes"
	"fmt"
	"log/slog"
	"mime/multipart"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/protocol"
)

// Uploads through a real worker: magnet.request.post and .files over
// multipart bodies sent as STDIN records, the files gone after each
// request, over-limit uploads answered 413 with bounded memory.

func uploadScript(t *testing.T, dir string) string {
	return writeScript(t, dir, "upload.lua", `
		magnet.header["Content-Type"] = "text/plain"
		local r = magnet.request
		local ok, files = pcall(function() return r.files end)
		if not ok then
			if os.getenv("QUERY_STRING") == "raise" then error(files, 0) end
			print("error: ", files)
			return
		end
		local f = files.doc
		local h = assert(io.open(f.path, "rb"))
		local data = h:read("*a")
		h:close()
		print(r.post.title, ";", f.filename, ";", f.size, ";", #data, ";", f.path)
		if os.getenv("QUERY_STRING") == "fail" then error("after the upload") end`)
}

func multipartBody(t *testing.T, size int) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	w.WriteField("title", "hello")
	p, err := w.CreateFormFile("doc", "report.pdf")
	if err != nil {
		t.Fatal(err)
	}
	p.Write(bytes.Repeat([]byte("u"), size))
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func postUpload(t *testing.T, sock, script, query, ct string, body []byte) (int, string) {
	t.Helper()
	c := dialRaw(t, sock)
	c.send(t, head(1, false, script, protocol.Pair{Name: "QUERY_STRING", Value: query},
		protocol.Pair{Name: "REQUEST_METHOD", Value: "POST"},
		protocol.Pair{Name: "CONTENT_TYPE", Value: ct},
		protocol.Pair{Name: "CONTENT_LENGTH", Value: strconv.Itoa(len(body))}))
	werr := make(chan error, 1)
	go func() {
		var recs []byte
		for p := body; len(p) > 0; {
			k := min(len(p), 65535)
			recs = append(recs, stdin(1, p[:k])...)
			p = p[k:]
		}
		_, err := c.Write(append(recs, stdinEnd(1)...))
		werr <- err
	}()
	st, out := c.readEnd(t, 1).status(t)
	<-werr // a 413 may close the connection before the body is all sent
	return st, out
}

func TestUploads(t *testing.T) {
	dir := t.TempDir()
	var log syncBuffer
	sock, _ := startServer(t, Config{MaxBody: -1, Uploads: luabind.Uploads{Dir: dir, MaxBytes: 3 << 20},
		Logger: slog.New(slog.NewTextHandler(&log, nil))})
	script := uploadScript(t, t.TempDir())
	empty := func(what string) {
		t.Helper()
		if left, _ := os.ReadDir(dir); len(left) != 0 {
			t.Errorf("%s: upload directory not empty after the request: %v", what, left)
		}
	}
	for _, size := range []int{0, 2 << 20} {
		ct, body := multipartBody(t, size)
		st, out := postUpload(t, sock, script, "", ct, body)
		want := fmt.Sprintf("hello;report.pdf;%d;%d;%s/upload-", size, size, dir)
		if st != 200 || !strings.HasPrefix(out, want) {
			t.Errorf("%d bytes: %d %q, want 200 %q...", size, st, out, want)
		}
		empty(fmt.Sprint(size, " bytes"))
	}
	ct, body := multipartBody(t, 100)
	if st, out := postUpload(t, sock, script, "fail", ct, body); st != 500 {
		t.Errorf("script error after the upload: %d %q", st, out)
	}
	empty("script error")

	// over --max-upload: the error to the script; a 413 when it raises,
	// or even when it caught it, since nothing was sent yet
	ct, body = multipartBody(t, 3<<20+1)
	for _, q := range []string{"raise", ""} {
		if st, out := postUpload(t, sock, script, q, ct, body); st != 413 || out != "Content Too Large\n" {
			t.Errorf("over --max-upload (%q): %d %q", q, st, out)
		}
		empty("over --max-upload")
	}
	if l := log.String(); !strings.Contains(l, "uploaded files over the limit") || !strings.Contains(l, "max-upload=3145728") {
		t.Errorf("the 413's log line does not name --max-upload:\n%s", l)
	}
	// malformed: the script sees the error
	st, out := postUpload(t, sock, script, "", ct, body[:1000])
	if st != 200 || out != "error: magnet.request: multipart: malformed body: unexpected end" {
		t.Errorf("truncated body: %d %q", st, out)
	}
	// the worker serves the next request
	ct, body = multipartBody(t, 10)
	if st, out := postUpload(t, sock, script, "", ct, body); st != 200 || !strings.HasPrefix(out, "hello;report.pdf;10;10;") {
		t.Errorf("next request: %d %q", st, out)
	}
	empty("next request")
}

// TestUploadTooLargeMemory: a 1 GiB upload, with no body limit, is cut at
// --max-upload and answered 413; the worker never holds it.
func TestUploadTooLargeMemory(t *testing.T) {
	dir := t.TempDir()
	sock, _ := startServer(t, Config{MaxBody: -1, Uploads: luabind.Uploads{Dir: dir, MaxBytes: 8 << 20}})
	script := uploadScript(t, t.TempDir())
	const boundary = "XyZ"
	base := peakReset(t)
	c := dialRaw(t, sock)
	c.send(t, head(1, false, script, protocol.Pair{Name: "REQUEST_METHOD", Value: "POST"},
		protocol.Pair{Name: "CONTENT_TYPE", Value: "multipart/form-data; boundary=" + boundary},
		protocol.Pair{Name: "CONTENT_LENGTH", Value: strconv.Itoa(1 << 30)}),
		stdin(1, []byte("--"+boundary+"\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"big.bin\"\r\n\r\n")))
	stop := make(chan struct{})
	sent := streamBody(c, 1<<30, stop)
	r := c.readEnd(t, 1)
	close(stop)
	if st, body := r.status(t); st != 413 || body != "Content Too Large\n" {
		t.Fatalf("1 GiB upload: %d %q", st, body)
	}
	n := <-sent
	peak := procStatus(t, "VmHWM")
	t.Logf("1 GiB upload: 413 after %d body bytes sent, peak RSS %d KiB over the baseline", n, (int64(peak)-int64(base))>>10)
	if n >= 1<<30 || peak > base+24<<20 {
		t.Fatalf("%d body bytes sent, peak RSS grew by %d MiB", n, (peak-base)>>20)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("upload directory not empty after the request: %v", left)
	}
}
