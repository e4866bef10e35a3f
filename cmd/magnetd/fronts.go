package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/magnet-fcgi/magnet/internal/accesslog"
	"github.com/magnet-fcgi/magnet/internal/daemon"
	"github.com/magnet-fcgi/magnet/internal/devhttp"
	"github.com/magnet-fcgi/magnet/internal/scoreboard"
	"github.com/magnet-fcgi/magnet/internal/shdict"
	"github.com/magnet-fcgi/magnet/internal/status"
	"github.com/magnet-fcgi/magnet/internal/statushttp"
	"github.com/magnet-fcgi/magnet/supervisor"
)

// poolName is the pool name on the status page (PHP-FPM's "pool").
const poolName = "magnet"

// fronts holds what magnetd runs beside the worker pool: the scoreboard,
// the status page and the development HTTP front.
type fronts struct {
	log       *slog.Logger
	board     *scoreboard.Board
	dicts     []*shdict.Dict // --shared
	pool      *status.Pool
	cancel    context.CancelFunc
	updating  chan struct{} // closed when the status updates stop
	servers   []*http.Server
	front     *devhttp.Front
	accessLog *daemon.LogFile
}

// startFronts creates the scoreboard and fills cfg's hooks for it, and
// starts the status page and HTTP front the flags ask for. Listen errors
// are returned before any worker starts.
func startFronts(o *options, cfg *supervisor.Config, log *slog.Logger) (*fronts, error) {
	f := &fronts{log: log}
	board, err := scoreboard.Create(supervisor.SlotCount(cfg.Workers))
	if err != nil {
		// The pool runs without it; only the status page needs it.
		log.Warn("no scoreboard: status unavailable", "err", err)
	} else {
		f.board = board
		// The board is the workers' fd 3, their first extra file.
		cfg.ExtraFiles = []*os.File{board.File()}
		// Only magnet-worker reports on the board; another program would
		// look as if it never started.
		reports := filepath.Base(cfg.Path) == "magnet-worker"
		cfg.Board = poolBoard{board: board, reports: reports}
		// magnet-worker takes and gives connections over the hand-off
		// channel; another program would never read its end.
		cfg.Handoff = reports
		if !reports {
			// Another program reports no request on the board: nothing for
			// the watchdog to watch.
			if o.requestTimeoutSet && o.requestTimeout > 0 {
				log.Warn("--request-terminate-timeout is ignored: the worker program is not magnet-worker and reports no request")
			}
			cfg.RequestTimeout = -1
		}
		pool := &status.Pool{Name: poolName, PM: "static", Start: time.Now(), Listener: cfg.Socket.File, Board: board}
		f.pool = pool
		ctx, cancel := context.WithCancel(context.Background())
		f.cancel = cancel
		pool.Update()
		f.updating = make(chan struct{})
		go func() {
			defer close(f.updating)
			pool.Run(ctx, time.Second, func(err error) { log.Debug("status update", "err", err) })
		}()
		if o.statusListen != "" {
			if err := f.listen(o.statusListen, "--status-listen", statushttp.Handler(pool)); err != nil {
				f.close()
				return nil, err
			}
		}
	}
	if err := f.createShared(o.shared, cfg); err != nil {
		f.close()
		return nil, err
	}
	if o.statusListen != "" && f.board == nil {
		return nil, errors.New("--status-listen: no scoreboard for the status page")
	}
	if o.httpAddr != "" {
		front, err := devhttp.New(o.docroot, cfg.Socket.Dial, devhttp.WithLogger(log))
		if err != nil {
			f.close()
			return nil, fmt.Errorf("--docroot: %w", err)
		}
		f.front = front
		var h http.Handler = front
		if o.statusPath != "" || o.pingPath != "" {
			h = f.special(o.statusPath, o.pingPath, h)
		}
		if o.accessLog != "" {
			if f.accessLog, err = daemon.OpenLogFile(o.accessLog); err != nil {
				f.close()
				return nil, fmt.Errorf("--access-log: %w", err)
			}
			h = accesslog.Handler(f.accessLog, h)
		}
		if err := f.listen(o.httpAddr, "--http", h); err != nil {
			f.close()
			return nil, err
		}
	}
	reopen := cfg.Reopen
	cfg.Reopen = func() {
		reopen()
		if f.accessLog != nil {
			if err := f.accessLog.Reopen(); err != nil {
				log.Error("reopening access log", "err", err)
			}
		}
	}
	cfg.Stopping = f.shutdown
	return f, nil
}

// listen binds addr now, so that a bad address fails before the workers
// start, and serves h on it.
func (f *fronts) listen(addr, flag string, h http.Handler) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(f.log.Handler(), slog.LevelWarn)}
	f.servers = append(f.servers, srv)
	f.log.Info("serving HTTP", "flag", flag, "addr", l.Addr().String())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			f.log.Error("HTTP server", "flag", flag, "err", err)
		}
	}()
	return nil
}

// special answers the status and ping paths in the HTTP front itself, as
// magnet-worker does behind a web server.
func (f *fronts) special(statusPath, pingPath string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var (
			body  bytes.Buffer
			ctype = "text/plain"
		)
		switch {
		case pingPath != "" && r.URL.Path == pingPath:
			body.WriteString(status.Pong + "\n")
		case statusPath != "" && r.URL.Path == statusPath && f.pool != nil:
			format, full := status.ParseQuery(r.URL.RawQuery)
			if err := status.Render(&body, f.pool, format, full); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			ctype = status.ContentType(format)
		default:
			next.ServeHTTP(w, r)
			return
		}
		for _, kv := range status.NoCacheHeaders {
			w.Header().Set(kv[0], kv[1])
		}
		w.Header().Set("Content-Type", ctype)
		w.Write(body.Bytes())
	})
}

// shutdown stops the HTTP servers gracefully, in the background, when the
// pool begins to stop.
func (f *fronts) shutdown() {
	for _, srv := range f.servers {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
		}()
	}
}

// close releases everything; nothing reads the scoreboard once it is
// unmapped.
func (f *fronts) close() {
	for _, srv := range f.servers {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(ctx)
		cancel()
		srv.Close()
	}
	if f.front != nil {
		f.front.Close()
	}
	if f.cancel != nil {
		f.cancel()
		<-f.updating
	}
	if f.accessLog != nil {
		f.accessLog.Close()
	}
	if f.board != nil {
		f.board.Close()
	}
	for _, d := range f.dicts {
		d.Close()
	}
}

// createShared makes the --shared dictionaries and passes them to every
// worker after the scoreboard, naming their fds in MAGNET_SHARED. They
// live as long as magnetd: workers come and go, the store stays.
func (f *fronts) createShared(opts []sharedOpt, cfg *supervisor.Config) error {
	if len(opts) == 0 {
		return nil
	}
	for _, s := range opts {
		d, err := shdict.Create(s.name, s.size)
		if err != nil {
			return fmt.Errorf("--shared: %w", err)
		}
		f.dicts = append(f.dicts, d)
	}
	first := 3 + len(cfg.ExtraFiles)
	for _, d := range f.dicts {
		cfg.ExtraFiles = append(cfg.ExtraFiles, d.File())
	}
	cfg.Env = append(cfg.Env, shdict.Env(f.dicts, first))
	if f.pool != nil {
		f.pool.Shared = f.dicts
	}
	return nil
}

// poolBoard is the scoreboard as the worker pool sees it.
type poolBoard struct {
	board *scoreboard.Board
	// reports is true when the workers report on the board, as
	// magnet-worker does.
	reports bool
}

// Env tells the worker its slot on the board, its fd 3.
func (b poolBoard) Env(slot int) []string { return []string{scoreboard.Env(3, slot)} }

func (b poolBoard) Started(slot, pid int) { b.board.Reset(slot, pid) }

func (b poolBoard) Served(slot int) uint64 { return b.board.Snapshot(slot).Requests }

// Attached reports whether the worker has left its starting state; a
// worker that never reports counts as attached.
func (b poolBoard) Attached(slot int) bool {
	if !b.reports {
		return true
	}
	st := b.board.Snapshot(slot).State
	return st != scoreboard.Starting && st != scoreboard.Free
}

// Request reports the worker's current request, with the request
// terminate timeout it announced for itself.
func (b poolBoard) Request(slot, pid int) (supervisor.Request, bool) {
	s := b.board.Snapshot(slot)
	if s.PID != pid || s.State != scoreboard.Busy {
		return supervisor.Request{}, false
	}
	return supervisor.Request{Start: s.RequestStart, Timeout: s.RequestTimeout, Script: s.Script, URI: s.URI}, true
}

// Terminated counts the kill on the status page.
func (b poolBoard) Terminated(int) { b.board.AddWatchdogKill() }

// Holding is how many connections the worker in slot holds, for the
// balance of connections between workers.
func (b poolBoard) Holding(slot int) int { return b.board.Holding(slot) }

// Exited frees the slot unless a newer worker already took it.
func (b poolBoard) Exited(slot, pid int) {
	if b.board.Snapshot(slot).PID == pid {
		b.board.Release(slot)
	}
}
