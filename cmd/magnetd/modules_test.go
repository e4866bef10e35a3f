package main

import (
	"bytes"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// TestModuleReloadAllWorkers: a module under --docroot is required by
// name; once its file is edited, every worker of the pool runs the new
// code from its next request on.
func TestModuleReloadAllWorkers(t *testing.T) {
	needWorker(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "m.sock")
	greet := filepath.Join(dir, "greet.lua")
	if err := os.WriteFile(greet, []byte(`return {v = "v1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "mod.lua")
	if err := os.WriteFile(script, []byte(`
		local f = io.open("/proc/self/stat")
		local pid = f:read("*n")
		f:close()
		io.write("Content-Type: text/plain\r\n\r\n", pid, " ", require("greet").v)`), 0o644); err != nil {
		t.Fatal(err)
	}
	m := startMaster(t, nil, nil, "-n", "-s", sock, "-F", "2", "--docroot", dir)
	waitChildren(t, m.pid(), 2, 30*time.Second)

	// until both workers answered want; any other version is a failure
	both := func(want string) {
		t.Helper()
		askAll(t, sock, script, "", 2, func(pid, v string) string {
			if v != want {
				return fmt.Sprintf("worker %s answered %q, want %q", pid, v, want)
			}
			return ""
		})
	}
	both("v1")
	// written in place, then replaced by a rename
	if err := os.WriteFile(greet, []byte(`return {v = "v2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	both("v2")
	replaceFile(t, greet, `return {v = "v3"}`)
	both("v3")
}

// TestUploadExample: examples/upload.lua through magnetd's HTTP front:
// fields and files of 0 bytes and 2 MiB, too many files, an upload over
// --max-upload (413), the upload directory empty after each request.
func TestUploadExample(t *testing.T) {
	needWorker(t)
	dir, uploads := t.TempDir(), t.TempDir()
	b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "upload.lua"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "upload.lua"), b, 0o644)
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	startMaster(t, nil, nil, "-n", "-F", "2", "--http", httpAddr, "--docroot", dir,
		"--env", "MAGNET_UPLOAD_DIR="+uploads, "--env", "MAGNET_MAX_UPLOAD=3M", "--env", "MAGNET_MAX_FILES=2")
	url := "http://" + httpAddr + "/upload.lua"
	if !poll(30*time.Second, func() bool { _, _, err = httpGet(url); return err == nil }) {
		t.Fatalf("GET %s: %v", url, err)
	}
	post := func(files map[string]int) (int, string) {
		t.Helper()
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		w.WriteField("title", "<holiday>")
		for name, size := range files {
			p, _ := w.CreateFormFile("doc", name)
			p.Write(bytes.Repeat([]byte{0xab}, size))
		}
		w.Close()
		c := http.Client{Timeout: 30 * time.Second}
		resp, err := c.Post(url, w.FormDataContentType(), &buf)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if left, _ := os.ReadDir(uploads); len(left) != 0 {
			t.Errorf("upload directory not empty after the request: %v", left)
		}
		return resp.StatusCode, string(body)
	}
	st, body := post(map[string]int{"empty.bin": 0, "big.bin": 2 << 20})
	for _, want := range []string{"&lt;holiday&gt;: 2 file(s)", "<li>empty.bin (application/octet-stream, 0 bytes) starts with </li>",
		"<li>big.bin (application/octet-stream, 2097152 bytes) starts with abababababababababababababababab</li>"} {
		if st != 200 || !strings.Contains(body, want) {
			t.Errorf("0 bytes and 2 MiB: %d %q, want %q", st, body, want)
		}
	}
	if st, body := post(map[string]int{"a": 1, "b": 1, "c": 1}); st != 400 || !strings.Contains(body, "too many files: more than 2 (--max-files)") {
		t.Errorf("too many files: %d %q", st, body)
	}
	if st, body := post(map[string]int{"huge.bin": 3<<20 + 1}); st != 413 {
		t.Errorf("over --max-upload: %d %q", st, body)
	}
	if st, _ := post(map[string]int{"small.bin": 10}); st != 200 {
		t.Errorf("next request: %d", st)
	}
}
