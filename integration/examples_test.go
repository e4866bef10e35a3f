package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// examplesNginx is nginx in front of magnetd for the examples: the SSE
// location unbuffered, as the README says a streaming location must be.
const examplesNginx = `user root;
worker_processes 1;
pid {{.Dir}}/nginx.pid;
error_log stderr notice;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path {{.Dir}}/client_body;
	fastcgi_temp_path {{.Dir}}/fastcgi;
	proxy_temp_path {{.Dir}}/proxy;
	uwsgi_temp_path {{.Dir}}/uwsgi;
	scgi_temp_path {{.Dir}}/scgi;
	client_max_body_size 16m;
	upstream magnet {
		server unix:{{.Socket}};
		keepalive 8;
	}
	server {
		listen 127.0.0.1:{{.Port}};
		root {{.DocRoot}};
		location = /sse.lua {
			include /etc/nginx/fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
			fastcgi_pass magnet;
			fastcgi_keep_conn on;
			fastcgi_buffering off;
		}
		location ~ \.lua$ {
			include /etc/nginx/fastcgi_params;
			fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
			fastcgi_pass magnet;
			fastcgi_keep_conn on;
		}
	}
}
`

// examplesLighttpd is lighttpd in front of the same magnetd socket.
const examplesLighttpd = `server.document-root = "{{.DocRoot}}"
server.bind          = "127.0.0.1"
server.port          = {{.Port}}
server.modules       = ( "mod_fastcgi" )
server.upload-dirs   = ( "{{.Dir}}" )
server.pid-file      = "{{.Dir}}/lighttpd.pid"
server.max-request-size = 16384
fastcgi.server = ( ".lua" => (( "socket" => "{{.Socket}}" )) )
`

// site is magnetd -F 2 serving a copy of examples/ (and the test
// scripts), with the web servers a test puts in front of it.
type site struct {
	m       *proc
	dir     string
	docroot string
	socket  string
	uploads string
}

// startSite starts magnetd with env (NAME=VALUE, passed to the workers
// with --env) on a unix socket in a temp dir.
func startSite(t *testing.T, env ...string) *site {
	t.Helper()
	needWorker(t)
	magnetd := buildMagnetd(t)
	dir := t.TempDir()
	s := &site{dir: dir, docroot: makeDocroot(t), socket: filepath.Join(dir, "m.sock"), uploads: t.TempDir()}
	env = append(env, "GUESTBOOK_DB="+filepath.Join(dir, "guestbook.db"), "SSE_FILE="+filepath.Join(dir, "sse.txt"),
		"MAGNET_UPLOAD_DIR="+s.uploads, "MAGNET_MAX_UPLOAD=3M")
	argv := []string{"-n", "-s", s.socket, "-F", "2"}
	for _, e := range env {
		argv = append(argv, "--env", e)
	}
	argv = append(argv, "--", workerBin, "--docroot", s.docroot)
	s.m = startProc(t, magnetd, argv, nil)
	waitDial(t, s.m, "unix", s.socket)
	return s
}

// front renders conf for this site and starts the web server with args
// (the configuration's path appended) on a free port; it returns the
// base URL.
func (s *site) front(t *testing.T, bin, name, conf string, args ...string) string {
	t.Helper()
	tmpl := template.Must(template.New(name).Parse(conf))
	dir := t.TempDir()
	_, port := startOnFreePort(t, func(port int) *proc {
		path := filepath.Join(dir, name)
		var b bytes.Buffer
		if err := tmpl.Execute(&b, serverConfig{Dir: dir, DocRoot: s.docroot, Port: port, Socket: s.socket}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return startProc(t, bin, append(args, path), nil)
	})
	return fmt.Sprintf("http://127.0.0.1:%d/", port)
}

// nginx starts nginx in front of the site.
func (s *site) nginx(t *testing.T) string {
	t.Helper()
	testutil.LookPath(t, nginxBin, "nginx-light")
	dir := t.TempDir()
	return s.front(t, nginxBin, "nginx.conf", examplesNginx, "-p", dir, "-e", "stderr", "-g", "daemon off;", "-c")
}

// lighttpd starts lighttpd in front of the site.
func (s *site) lighttpd(t *testing.T) string {
	t.Helper()
	testutil.LookPath(t, lighttpdBin, "lighttpd")
	return s.front(t, lighttpdBin, "lighttpd.conf", examplesLighttpd, "-D", "-f")
}

// noFollow is a client that returns redirects instead of following them,
// so that a test sees the redirect after a POST.
var noFollow = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// send makes one request and reads the whole response.
func send(t *testing.T, method, url, contentType string, body io.Reader, header ...string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noFollow.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

const formType = "application/x-www-form-urlencoded"

// TestExamplesNginx runs the examples through magnetd behind nginx.
func TestExamplesNginx(t *testing.T) {
	s := startSite(t)
	base := s.nginx(t)
	t.Run("guestbook", func(t *testing.T) { testGuestbook(t, base) })
	t.Run("form", func(t *testing.T) { testForm(t, base) })
	t.Run("json-api", func(t *testing.T) { testJSONAPI(t, base) })
	t.Run("upload", func(t *testing.T) { testUpload(t, base, s.uploads) })
	t.Run("json-bench", func(t *testing.T) { testJSONBench(t, base) })
	if s.m.exited() {
		t.Fatalf("magnetd exited: %v", s.m.err)
	}
}

// TestExamplesLighttpd runs the examples that need no database server
// through magnetd behind lighttpd, which opens a connection per request.
func TestExamplesLighttpd(t *testing.T) {
	s := startSite(t)
	base := s.lighttpd(t)
	t.Run("guestbook", func(t *testing.T) { testGuestbook(t, base) })
	t.Run("form", func(t *testing.T) { testForm(t, base) })
	t.Run("json-api", func(t *testing.T) { testJSONAPI(t, base) })
	t.Run("upload", func(t *testing.T) { testUpload(t, base, s.uploads) })
}

// testGuestbook: a POST is stored through placeholders and answered with
// a 303 to the page, which shows the entry escaped; an empty POST is a
// 400.
func testGuestbook(t *testing.T, base string) {
	attack := "x'); DROP TABLE entries; --"
	form := url.Values{"name": {"<script>Eve"}, "message": {attack}}.Encode()
	r := send(t, "POST", base+"guestbook.lua", formType, strings.NewReader(form))
	if r.status != 303 || r.header.Get("Location") != "/guestbook.lua" {
		t.Fatalf("post: %d Location %q %q", r.status, r.header.Get("Location"), r.body)
	}
	if r := send(t, "POST", base+"guestbook.lua", formType, strings.NewReader("name=&message=")); r.status != 400 {
		t.Fatalf("empty post: %d %q", r.status, r.body)
	}
	r = send(t, "GET", base+"guestbook.lua", "", nil)
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(r.body, "<b>&lt;script&gt;Eve</b>") || !strings.Contains(r.body, "x&#39;); DROP TABLE entries; --</p>") ||
		strings.Contains(r.body, "<script>") {
		t.Fatalf("page: %d %q", r.status, r.body)
	}
}

// testForm: the posted name comes back in a cookie with a 303, and the
// page greets it escaped.
func testForm(t *testing.T, base string) {
	r := send(t, "POST", base+"form.lua", formType, strings.NewReader("name=%3Cb%3EBob"))
	if r.status != 303 || r.header.Get("Location") != "/form.lua" {
		t.Fatalf("post: %d Location %q", r.status, r.header.Get("Location"))
	}
	resp := http.Response{Header: r.header}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "name" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" {
		t.Fatalf("post: cookie %v in %v", cookie, r.header)
	}
	r = send(t, "GET", base+"form.lua", "", nil, "Cookie", "name="+cookie.Value)
	if r.status != 200 || !strings.Contains(r.body, "<p>Hello, &lt;b&gt;Bob!</p>") {
		t.Fatalf("page: %d %q", r.status, r.body)
	}
}

// testJSONAPI: a POSTed note is answered 201 and listed by the worker that
// took it (notes live in each worker's _G); bad JSON is a 400 in JSON.
func testJSONAPI(t *testing.T, base string) {
	text := fmt.Sprintf("note <%d>", time.Now().UnixNano())
	r := send(t, "POST", base+"json-api.lua", "application/json", strings.NewReader(`{"text":`+fmt.Sprintf("%q", text)+`}`))
	var note struct {
		ID   int    `json:"id"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal([]byte(r.body), &note); r.status != 201 || err != nil || note.Text != text || note.ID < 1 ||
		r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("post: %d %q (%v)", r.status, r.body, err)
	}
	r = send(t, "POST", base+"json-api.lua", "application/json", strings.NewReader(`{nope`))
	var bad struct{ Error string }
	if err := json.Unmarshal([]byte(r.body), &bad); r.status != 400 || err != nil || bad.Error == "" {
		t.Fatalf("bad json: %d %q (%v)", r.status, r.body, err)
	}
	// two workers: the list asked for may come from the other one, whose
	// list is a JSON array too
	for try := 0; ; try++ {
		r = send(t, "GET", base+"json-api.lua", "", nil)
		var list []struct{ Text string }
		if err := json.Unmarshal([]byte(r.body), &list); r.status != 200 || err != nil {
			t.Fatalf("list: %d %q (%v)", r.status, r.body, err)
		}
		found := false
		for _, n := range list {
			found = found || n.Text == text
		}
		if found {
			break
		}
		if try == 50 {
			t.Fatalf("the note never listed in 50 tries: %q", r.body)
		}
	}
}

// testUpload: files of 0 bytes and 2 MiB with an escaped title, too many
// files (400), over --max-upload (413); the upload directory is empty
// after each request.
func testUpload(t *testing.T, base, uploads string) {
	post := func(files [][2]any) httpResult {
		t.Helper()
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		w.WriteField("title", "<holiday>")
		for _, f := range files {
			p, _ := w.CreateFormFile("doc", f[0].(string))
			p.Write(bytes.Repeat([]byte{0xab}, f[1].(int)))
		}
		w.Close()
		r := send(t, "POST", base+"upload.lua", w.FormDataContentType(), &buf)
		if left, _ := os.ReadDir(uploads); len(left) != 0 {
			t.Errorf("upload directory not empty after the request: %v", left)
		}
		return r
	}
	r := post([][2]any{{"empty.bin", 0}, {"<big>.bin", 2 << 20}})
	for _, want := range []string{"&lt;holiday&gt;: 2 file(s)", "<li>empty.bin (application/octet-stream, 0 bytes) starts with </li>",
		"<li>&lt;big&gt;.bin (application/octet-stream, 2097152 bytes) starts with abababababababababababababababab</li>"} {
		if r.status != 200 || !strings.Contains(r.body, want) {
			t.Errorf("0 bytes and 2 MiB: %d %q, want %q", r.status, r.body, want)
		}
	}
	if r := post([][2]any{{"huge.bin", 3<<20 + 1}}); r.status != 413 {
		t.Errorf("over --max-upload: %d %q", r.status, r.body)
	}
	if r := post([][2]any{{"small.bin", 10}}); r.status != 200 || !strings.Contains(r.body, "1 file(s)") {
		t.Errorf("next request: %d %q", r.status, r.body)
	}
	if r := send(t, "GET", base+"upload.lua", "", nil); r.status != 200 || !strings.Contains(r.body, `enctype="multipart/form-data"`) {
		t.Errorf("form: %d %q", r.status, r.body)
	}
}

// testJSONBench: examples/json-bench.lua answers the length bench/run
// expects (JSON_EXPECT), so that the JSON rows of make bench count no
// failures.
func testJSONBench(t *testing.T, base string) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "bench", "run"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^JSON_EXPECT=(\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no JSON_EXPECT in bench/run")
	}
	if r := send(t, "GET", base+"json-bench.lua", "", nil); r.status != 200 || r.body != string(m[1]) {
		t.Fatalf("%d %q, want bench/run's JSON_EXPECT %s", r.status, r.body, m[1])
	}
}

// TestExamplesDatabases runs the examples on database servers through
// magnetd behind nginx: notes-api.lua on PostgreSQL and the seed's
// mysqlcache.lua, unmodified, on MariaDB.
func TestExamplesDatabases(t *testing.T) {
	p := testutil.NeedPostgres(t)
	m := testutil.NeedMariaDB(t)
	if _, err := m.Query("CREATE TABLE magnet.users (id INT PRIMARY KEY, name VARCHAR(50)); " +
		"INSERT INTO magnet.users VALUES (1, 'ada'), (2, '<bob>')"); err != nil {
		t.Fatal(err)
	}
	s := startSite(t,
		fmt.Sprintf("NOTES_DSN=host=%s port=%d dbname=%s user=%s password=%s", p.Dir, p.Port, p.Database, p.User, p.Password),
		"MYSQL_DATABASE="+m.Database, "MYSQL_USER="+m.User, "MYSQL_PASSWORD="+m.Password, "MYSQL_HOST="+m.Socket)
	base := s.nginx(t)

	t.Run("notes-api", func(t *testing.T) {
		r := send(t, "POST", base+"notes-api.lua", "application/json", strings.NewReader(`{"text":"<b>hi</b>"}`))
		var id struct{ ID int }
		if err := json.Unmarshal([]byte(r.body), &id); r.status != 201 || err != nil || id.ID != 1 {
			t.Fatalf("post: %d %q (%v)", r.status, r.body, err)
		}
		if r := send(t, "POST", base+"notes-api.lua", "application/json", strings.NewReader(`{"text":`)); r.status != 400 {
			t.Fatalf("bad post: %d %q", r.status, r.body)
		}
		r = send(t, "GET", base+"notes-api.lua", "", nil)
		var list struct {
			Notes []struct {
				ID   int
				Text string
			}
		}
		if err := json.Unmarshal([]byte(r.body), &list); r.status != 200 || err != nil || len(list.Notes) != 1 ||
			list.Notes[0].ID != 1 || list.Notes[0].Text != "<b>hi</b>" {
			t.Fatalf("list: %d %q (%v)", r.status, r.body, err)
		}
	})
	t.Run("mysqlcache", func(t *testing.T) {
		// the seed's script prints its table as the database holds it
		const want = "<table>\n<tr><td>1</td><td>ada</td></tr>\n<tr><td>2</td><td><bob></td></tr>\n</table>\n"
		for i := 0; i < 20; i++ {
			if r := send(t, "GET", base+"mysqlcache.lua", "", nil); r.status != 200 || r.body != want ||
				!strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
				t.Fatalf("request %d: %d %q", i, r.status, r.body)
			}
		}
	})
}
