package luabind

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// form is a multipart body made with Go's writer: fields as name, value
// pairs and files as name, filename, content.
type form struct {
	fields [][2]string
	files  [][3]string
}

func (f form) encode(t testing.TB) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, kv := range f.fields {
		if err := w.WriteField(kv[0], kv[1]); err != nil {
			t.Fatal(err)
		}
	}
	for _, fl := range f.files {
		p, err := w.CreateFormFile(fl[0], fl[1])
		if err != nil {
			t.Fatal(err)
		}
		p.Write([]byte(fl[2]))
	}
	w.Close()
	return w.FormDataContentType(), b.Bytes()
}

func uploadRequest(ct string, body []byte) *Request {
	r := request("REQUEST_METHOD", "POST", "CONTENT_TYPE", ct, "CONTENT_LENGTH", fmt.Sprint(len(body)))
	r.Body = bytes.NewReader(body)
	return r
}

// dumpForm prints post and files in a fixed order, and checks each file's
// content on disk against its size.
const dumpForm = `
local r = magnet.request
local keys = {}
for k, v in pairs(r.post) do
	if type(v) == "table" then v = table.concat(v, "|") end
	keys[#keys + 1] = k .. "=" .. v
end
local function file(f)
	local h = assert(io.open(f.path, "rb"))
	local data = h:read("*a")
	h:close()
	assert(#data == f.size, "size")
	return f.filename .. ":" .. f.content_type .. ":" .. f.size .. ":" .. string.sub(data, 1, 8)
end
for k, v in pairs(r.files) do
	if v.path then keys[#keys + 1] = k .. "=" .. file(v)
	else
		local l = {}
		for i, f in ipairs(v) do l[i] = file(f) end
		keys[#keys + 1] = k .. "=" .. table.concat(l, "|")
	end
	PATHS = (PATHS or "") .. (v.path or v[1].path) .. "\n"
end
table.sort(keys)
print(table.concat(keys, " "), "\n")
`

func TestMultipart(t *testing.T) {
	st := newState(t)
	dir := t.TempDir()
	st.SetUploads(Uploads{Dir: dir, MaxBytes: 3 << 20, MaxFiles: 3})
	c := load(t, st, "up.lua", dumpForm)
	big := strings.Repeat("x", 2<<20)
	ct, body := form{
		fields: [][2]string{{"a", "1"}, {"tag", "x"}, {"tag", "y"}, {"empty", ""}},
		files:  [][3]string{{"doc", "a.txt", "hello"}, {"pics", "p1.png", ""}, {"pics", "../../etc/p2.png", big}},
	}.encode(t)
	out := run(t, st, c, uploadRequest(ct, body))
	want := "a=1 doc=a.txt:application/octet-stream:5:hello empty= pics=p1.png:application/octet-stream:0:|p2.png:application/octet-stream:2097152:xxxxxxxx tag=x|y\n"
	if out != want {
		t.Fatalf("got  %q\nwant %q", out, want)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("upload directory not empty after the run: %v", left)
	}
}

func TestMultipartErrors(t *testing.T) {
	st := newState(t)
	dir := t.TempDir()
	st.SetUploads(Uploads{Dir: dir, MaxBytes: 1 << 20, MaxFiles: 2})
	c := load(t, st, "up.lua", `
		local ok, err = pcall(function() return magnet.request.files end)
		local ok2, err2 = pcall(function() return magnet.request.post end)
		assert(err == err2, "the error is kept")
		print(tostring(ok), "\t", err, "\n")`)
	over, overBody := form{files: [][3]string{{"f", "a", "1"}, {"f", "b", strings.Repeat("y", 1<<20)}}}.encode(t)
	many, manyBody := form{files: [][3]string{{"f", "a", "1"}, {"f", "b", "2"}, {"f", "c", "3"}}}.encode(t)
	ok, okBody := form{fields: [][2]string{{"a", "b"}}}.encode(t)
	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     string
		over     bool
	}{
		{"over --max-upload", over, overBody, "false\tmagnet.request: multipart: upload too large: the files of a request are limited to 1048576 bytes (--max-upload)\n", true},
		{"too many files", many, manyBody, "false\tmagnet.request: multipart: too many files: more than 2 (--max-files)\n", false},
		{"truncated", ok, okBody[:len(okBody)-10], "false\tmagnet.request: multipart: malformed body: unexpected end\n", false},
		{"no boundary", "multipart/form-data", okBody, "false\tmagnet.request: multipart: no boundary in Content-Type\n", false},
		{"bad content type", "multipart/form-data; boundary=\"", okBody, "false\tmagnet.request: multipart: bad Content-Type: mime: invalid media parameter\n", false},
		{"garbage", ok, []byte("not multipart at all"), "false\tmagnet.request: multipart: malformed body: multipart: NextPart: EOF\n", false},
		{"bad disposition", "multipart/form-data; boundary=B", []byte("--B\r\nContent-Disposition: form-data; name=\"\r\n\r\nv\r\n--B--\r\n"), "false\tmagnet.request: multipart: bad Content-Disposition: mime: invalid media parameter\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(t, st, c, uploadRequest(tc.ct, tc.body))
			if out != tc.want {
				t.Errorf("got  %q\nwant %q", out, tc.want)
			}
			if st.BodyTooLarge() != tc.over {
				t.Errorf("BodyTooLarge = %v", st.BodyTooLarge())
			}
			if left, _ := os.ReadDir(dir); len(left) != 0 {
				t.Errorf("upload directory not empty after the run: %v", left)
			}
		})
	}
	// the state serves the next request
	ct, body := form{fields: [][2]string{{"a", "b"}}, files: [][3]string{{"f", "x", "data"}}}.encode(t)
	if out := run(t, st, load(t, st, "dump.lua", dumpForm), uploadRequest(ct, body)); out != "a=b f=x:application/octet-stream:4:data\n" {
		t.Errorf("next request: %q", out)
	}
}

// TestMultipartScriptError: the files go even when the script fails after
// reading them, and the default directory goes with the state.
func TestMultipartScriptError(t *testing.T) {
	st, err := NewState()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := load(t, st, "up.lua", `_G.KEEP = magnet.request.files.f.path; error("boom")`)
	ct, body := form{files: [][3]string{{"f", "x", "data"}}}.encode(t)
	if err := st.Run(c, uploadRequest(ct, body)); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("run: %v", err)
	}
	path := runString(t, st, `print(KEEP, "\n")`)
	if filepath.Dir(path) != filepath.Join(os.TempDir(), fmt.Sprintf("magnet-uploads-%d", os.Getpid())) {
		t.Errorf("upload path %s", path)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("upload kept after a failed run: %v", err)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("upload directory: %v %v", fi, err)
	}
	st.Close()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("default upload directory kept after Close: %v", err)
	}
}

func runString(t *testing.T, st *State, src string) string {
	t.Helper()
	return strings.TrimSuffix(run(t, st, load(t, st, "s.lua", src), nil), "\n")
}

// TestMultipartAfterRead: a script that read the body with
// magnet.request.body() first still gets its form.
func TestMultipartAfterRead(t *testing.T) {
	st := newState(t)
	st.SetUploads(Uploads{Dir: t.TempDir()})
	ct, body := form{fields: [][2]string{{"a", "b"}}, files: [][3]string{{"f", "x", "data"}}}.encode(t)
	c := load(t, st, "r.lua", `local b = magnet.request.body() print(#b, "\t", magnet.request.post.a, "\t", magnet.request.files.f.size, "\n")`)
	if out, want := run(t, st, c, uploadRequest(ct, body)), fmt.Sprintf("%d\tb\t4\n", len(body)); out != want {
		t.Errorf("body() first: %q, want %q", out, want)
	}
	// urlencoded forms are unchanged; files is empty for them
	c = load(t, st, "u.lua", `print(magnet.request.post.a, "\t", tostring(next(magnet.request.files)), "\n")`)
	r := request("REQUEST_METHOD", "POST", "CONTENT_TYPE", "application/x-www-form-urlencoded")
	r.Body = strings.NewReader("a=1+2")
	if out := run(t, st, c, r); out != "1 2\tnil\n" {
		t.Errorf("urlencoded: %q", out)
	}
}
