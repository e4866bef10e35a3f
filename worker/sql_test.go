package worker

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/magnet-fcgi/magnet/internal/testutil"
	"github.com/magnet-fcgi/magnet/protocol"
)

// sqlGet asks for script on c and returns the response's status and body.
func sqlGet(c *protocol.Client, script string, params []protocol.Pair) (int, string, error) {
	p := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: "GET"}}, params...)
	resp, err := c.Do(&protocol.Request{KeepConn: true, Params: p})
	if err != nil {
		return 0, "", err
	}
	code, _, body, err := protocol.ParseCGI(resp.Stdout)
	return code, string(body), err
}

func comSelect(t *testing.T, m *testutil.MariaDB) int {
	t.Helper()
	out, err := m.Query("SHOW GLOBAL STATUS LIKE 'Com_select'")
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var n int
	if _, err := fmt.Sscan(out, &name, &n); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	return n
}

// TestSQLMySQLCache runs the seed's mysqlcache.lua, unmodified, on two
// workers against a MariaDB of the test's own: 1,000 requests open one
// connection per worker and query at most once a second per worker; the
// database restarted mid-run costs some requests a 500, then every
// request succeeds again on the same workers.
func TestSQLMySQLCache(t *testing.T) {
	m := testutil.NeedMariaDB(t)
	if _, err := m.Query("CREATE TABLE magnet.users (id INT PRIMARY KEY, name VARCHAR(50)); " +
		"INSERT INTO magnet.users VALUES (1, 'ada'), (2, 'bob')"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := os.ReadFile(filepath.Join("..", "examples", "mysqlcache.lua"))
	if err != nil {
		t.Fatal(err)
	}
	script := writeScript(t, dir, "mysqlcache.lua", string(src))
	params := []protocol.Pair{{Name: "MYSQL_DATABASE", Value: m.Database}, {Name: "MYSQL_USER", Value: m.User},
		{Name: "MYSQL_PASSWORD", Value: m.Password}, {Name: "MYSQL_HOST", Value: m.Socket}}
	var clients []*protocol.Client
	for range 2 {
		sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Timeout: 10 * time.Second})
		clients = append(clients, dial(t, sock), dial(t, sock))
	}
	const want = "<tr><td>1</td><td>ada</td></tr>\n<tr><td>2</td><td>bob</td></tr>"

	selects := comSelect(t, m)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 / len(clients) {
				code, body, err := sqlGet(c, script, params)
				if err == nil && (code != 200 || !strings.Contains(body, want)) {
					err = fmt.Errorf("status %d: %q", code, body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	secs := int(time.Since(start)/time.Second) + 2
	if n, err := m.Connections(); err != nil || n != 2 {
		t.Errorf("the workers hold %d connections (%v), want 2", n, err)
	}
	// Our own count query is a SELECT too.
	if n := comSelect(t, m) - selects; n > 2*secs+1 {
		t.Errorf("%d queries for 1,000 requests in under %ds on 2 workers: the cache did not answer", n, secs)
	}

	// The database restarts while the load goes on.
	var ok, failed, answered atomic.Int64
	var stop atomic.Bool
	errs = make(chan error, len(clients))
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				code, body, err := sqlGet(c, script, params)
				switch {
				case err != nil:
					errs <- err
					return
				case code == 200 && strings.Contains(body, want):
					ok.Add(1)
				case code == 500:
					failed.Add(1)
				default:
					errs <- fmt.Errorf("status %d: %q", code, body)
					return
				}
				answered.Add(1)
			}
		}()
	}
	sqlWaitFor(t, "requests before the restart", func() bool { return ok.Load() > 50 })
	m.Stop()
	sqlWaitFor(t, "a request to fail while the database is down", func() bool { return failed.Load() > 0 })
	if err := m.Start(); err != nil {
		stop.Store(true)
		wg.Wait()
		t.Fatal(err)
	}
	// Once a request has seen the database again, all succeed.
	okAtRestart := ok.Load()
	sqlWaitFor(t, "a request to succeed after the restart", func() bool { return ok.Load() > okAtRestart+int64(2*len(clients)) })
	base, baseFailed := answered.Load(), failed.Load()
	sqlWaitFor(t, "200 requests after the restart", func() bool { return answered.Load() > base+200 })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := failed.Load() - baseFailed; n != 0 {
		t.Errorf("%d requests failed after the database was back", n)
	}
	if n, err := m.Connections(); err != nil || n != 2 {
		t.Errorf("after the restart the workers hold %d connections (%v), want 2", n, err)
	}
	t.Logf("restart: %d requests answered, %d failed with a 500", answered.Load(), failed.Load())

	// A database that stops answering costs the request in progress its
	// time limit, not the worker: the next request is served.
	const limit = 2 * time.Second
	sock, _ := startServer(t, Config{Scripts: scriptsIn(dir), Timeout: limit})
	c := dial(t, sock)
	query := writeScript(t, dir, "query.lua", `
if not _G.con then _G.con = assert(luasql.mysql():connect(os.getenv("MYSQL_DATABASE"), os.getenv("MYSQL_USER"),
	os.getenv("MYSQL_PASSWORD"), os.getenv("MYSQL_HOST"))) end
print("Content-Type: text/plain\r\n\r\n" .. assert(con:execute("SELECT COUNT(*) FROM users")):fetch())`)
	if code, body, err := sqlGet(c, query, params); err != nil || code != 200 || body != "2" {
		t.Fatalf("query: %d %q %v", code, body, err)
	}
	if err := syscall.Kill(m.Pid(), syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if err := testutil.WaitStopped(m.Pid(), 30*time.Second); err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	code, body, err := sqlGet(c, query, params)
	took := time.Since(begin)
	syscall.Kill(m.Pid(), syscall.SIGCONT)
	if err != nil || code != 500 {
		t.Errorf("query to a stopped database: %d %q %v, want a 500", code, body, err)
	}
	if took > limit+5*time.Second {
		t.Errorf("the request took %v, over its time limit of %v (and 5s for a loaded machine)", took, limit)
	}
	if code, body, err := sqlGet(c, query, params); err != nil || code != 200 || body != "2" {
		t.Fatalf("after SIGCONT: %d %q %v", code, body, err)
	}
}

// sqlWaitFor polls cond until it holds, or fails the test after a minute.
func sqlWaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sqlDo sends a request with a body and returns the status and the
// response.
func sqlDo(t *testing.T, c *protocol.Client, script, method, ctype, body string, extra ...protocol.Pair) (int, string) {
	t.Helper()
	params := append([]protocol.Pair{{Name: "SCRIPT_FILENAME", Value: script}, {Name: "REQUEST_METHOD", Value: method},
		{Name: "CONTENT_TYPE", Value: ctype}, {Name: "CONTENT_LENGTH", Value: strconv.Itoa(len(body))}}, extra...)
	resp, err := c.Do(&protocol.Request{KeepConn: true, Params: params, Body: strings.NewReader(body)})
	if err != nil {
		t.Fatal(err)
	}
	code, _, _, err := protocol.ParseCGI(resp.Stdout)
	if err != nil {
		t.Fatalf("%v: %q", err, resp.Stdout)
	}
	return code, string(resp.Stdout)
}

// TestSQLGuestbook runs examples/guestbook.lua on SQLite: a post stored
// through placeholders, a redirect after it, the entries escaped.
func TestSQLGuestbook(t *testing.T) {
	sock, _ := startServer(t, Config{})
	script, _ := filepath.Abs("../examples/guestbook.lua")
	c := dial(t, sock)
	env := []protocol.Pair{{Name: "GUESTBOOK_DB", Value: filepath.Join(t.TempDir(), "gb.db")},
		{Name: "SCRIPT_NAME", Value: "/guestbook.lua"}}
	form := "application/x-www-form-urlencoded"
	code, out := sqlDo(t, c, script, "POST", form, "name=%3Cscript%3EEve&message=x%27%29%3B+DROP+TABLE+entries%3B+--", env...)
	if code != 303 || !strings.Contains(out, "Location: /guestbook.lua\r\n") {
		t.Fatalf("post: %d %q", code, out)
	}
	if code, out := sqlDo(t, c, script, "POST", form, "name=&message=", env...); code != 400 {
		t.Fatalf("empty post: %d %q", code, out)
	}
	code, out = sqlDo(t, c, script, "GET", "", "", env...)
	if code != 200 || !strings.Contains(out, "<b>&lt;script&gt;Eve</b>") || !strings.Contains(out, "x&#39;); DROP TABLE entries; --</p>") {
		t.Fatalf("page: %d %q", code, out)
	}
}

// TestSQLNotesAPI runs examples/notes-api.lua on PostgreSQL.
func TestSQLNotesAPI(t *testing.T) {
	p := testutil.NeedPostgres(t)
	sock, _ := startServer(t, Config{Timeout: 10 * time.Second})
	script, _ := filepath.Abs("../examples/notes-api.lua")
	c := dial(t, sock)
	dsn := protocol.Pair{Name: "NOTES_DSN", Value: fmt.Sprintf("host=%s port=%d dbname=%s user=%s password=%s", p.Dir, p.Port, p.Database, p.User, p.Password)}
	if code, out := sqlDo(t, c, script, "POST", "application/json", `{"text":"<b>hi</b>"}`, dsn); code != 201 || !strings.Contains(out, `{"id":1}`) {
		t.Fatalf("post: %d %q", code, out)
	}
	if code, out := sqlDo(t, c, script, "POST", "application/json", `{"text":`, dsn); code != 400 {
		t.Fatalf("bad post: %d %q", code, out)
	}
	if code, out := sqlDo(t, c, script, "GET", "", "", dsn); code != 200 || !strings.Contains(out, `{"notes":[{`) ||
		!strings.Contains(out, `"id":1`) || !strings.Contains(out, `"text":"<b>hi<\/b>"`) {
		t.Fatalf("list: %d %q", code, out)
	}
}
