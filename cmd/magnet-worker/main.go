// Command magnet-worker serves Lua scripts over FastCGI. It runs on its own
// (--listen, or the socket a web server or spawner hands over as fd 0) or
// as one of magnetd's workers.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/bytesize"
	"github.com/magnet-fcgi/magnet/internal/handoff"
	"github.com/magnet-fcgi/magnet/internal/memtrim"
	"github.com/magnet-fcgi/magnet/internal/scoreboard"
	"github.com/magnet-fcgi/magnet/internal/socket"
	"github.com/magnet-fcgi/magnet/internal/status"
	"github.com/magnet-fcgi/magnet/internal/version"
	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/worker"
)

func main() {
	app := &cli.App{
		Name:      "magnet-worker",
		Usage:     "serve Lua scripts over FastCGI",
		Version:   version.String(),
		ArgsUsage: " ",
		Description: "Without --listen, fd 0 must be a listening socket (as lighttpd's bin-path and spawn-fcgi provide).\n" +
			"SIGTERM, SIGINT and SIGUSR1 stop gracefully: the request in progress finishes first.\n" +
			"SIGUSR2 is the full stop magnetd sends when it stops: the listening socket is shut down for every process sharing it, and the worker answers the requests\n" +
			"that arrive on its open connections until the web server closes them, up to --drain-timeout.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Aliases: []string{"l"}, Usage: "unix socket `PATH` or HOST:PORT (default: the socket on fd 0)"},
			&cli.IntFlag{Name: "backlog", Value: 1024, Usage: "listen backlog for --listen"},
			&cli.StringSliceFlag{Name: "docroot", Usage: "only serve scripts under `DIR` (repeatable; symlinks are resolved)"},
			&cli.StringSliceFlag{Name: "ext", Value: cli.NewStringSlice(".lua"), Usage: "allowed script extension (repeatable)"},
			&cli.BoolFlag{Name: "debug", Usage: "put error details into 500 responses"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "stop a script that runs longer than this with a 500 (0: never)"},
			&cli.StringSliceFlag{Name: "shared", Usage: "a dictionary `NAME=SIZE` scripts share as magnet.shared.NAME (repeatable); standalone, workers on the same socket share a file in /dev/shm; under magnetd, give it to magnetd"},
			&cli.StringFlag{Name: "memory-limit", Value: "128M", EnvVars: []string{"MAGNET_MEMORY_LIMIT"}, Usage: "cap the Lua heap at `SIZE` (bytes, or with K, M or G; 0: no cap); a script that goes over it gets a 500"},
			&cli.DurationFlag{Name: "stat-interval", Usage: "stat scripts for changes at most this often instead of watching them with inotify (0: watch)"},
			&cli.BoolFlag{Name: "watch", Value: true, Usage: "see script changes through inotify; false: stat each script on every request"},
			&cli.DurationFlag{Name: "busy-poll", EnvVars: []string{"MAGNET_BUSY_POLL"}, Usage: "after an answer, poll this long for the next request before sleeping (0: sleep at once; try 50us on a dedicated machine)"},
			&cli.DurationFlag{Name: "idle-timeout", Value: worker.DefaultIdleTimeout, EnvVars: []string{"MAGNET_IDLE_TIMEOUT"}, Usage: "close a keep-alive connection with no request for this long (0: never)"},
			&cli.DurationFlag{Name: "read-timeout", Value: 30 * time.Second, EnvVars: []string{"MAGNET_READ_TIMEOUT"}, Usage: "drop a connection whose request params take longer than this to arrive, or whose body stops arriving for this long"},
			&cli.StringFlag{Name: "max-body", Value: "8M", EnvVars: []string{"MAGNET_MAX_BODY"}, Usage: "answer 413 to a request body over `SIZE` (bytes, or with K, M or G; 0: no limit); a script reading past it gets an error"},
			&cli.StringFlag{Name: "upload-dir", EnvVars: []string{"MAGNET_UPLOAD_DIR"}, DefaultText: "$TMPDIR/magnet-uploads-PID", Usage: "put the files of multipart uploads (magnet.request.files) in `DIR` while their request runs"},
			&cli.StringFlag{Name: "max-upload", Value: "8M", EnvVars: []string{"MAGNET_MAX_UPLOAD"}, Usage: "the files uploaded by one request may total `SIZE` (0: no limit but --max-body); more is an error to the script and a 413"},
			&cli.IntFlag{Name: "max-files", Value: luabind.DefaultMaxFiles, EnvVars: []string{"MAGNET_MAX_FILES"}, Usage: "one request may upload `N` files; more is an error to the script"},
			&cli.StringFlag{Name: "lua-path", EnvVars: []string{"MAGNET_LUA_PATH"}, Usage: "put `TEMPLATES` (\"/dir/?.lua;...\") in front of package.path, ahead of each --docroot's ?.lua and ?/init.lua"},
			&cli.StringFlag{Name: "lua-cpath", EnvVars: []string{"MAGNET_LUA_CPATH"}, Usage: "put `TEMPLATES` (\"/dir/?.so;...\") in front of package.cpath"},
			&cli.StringFlag{Name: "output-buffer", Value: "64K", EnvVars: []string{"MAGNET_OUTPUT_BUFFER"}, Usage: "send a script's output to the client once `SIZE` of it is buffered (0: only when the script flushes)"},
			&cli.DurationFlag{Name: "send-timeout", Value: 30 * time.Second, EnvVars: []string{"MAGNET_SEND_TIMEOUT"}, Usage: "drop a client that takes none of the response for this long"},
			&cli.IntFlag{Name: "max-conns", EnvVars: []string{"MAGNET_MAX_CONNS"}, DefaultText: "1024, or less under RLIMIT_NOFILE", Usage: "hold at most `N` connections; at the cap stop accepting and leave new ones to the other workers"},
			&cli.DurationFlag{Name: "drain-timeout", Value: 5 * time.Second, EnvVars: []string{"MAGNET_DRAIN_TIMEOUT"}, Usage: "on SIGUSR2 (magnetd's stop), wait at most this long for the web server to close its connections"},
			&cli.IntFlag{Name: "max-requests", EnvVars: []string{"PHP_FCGI_MAX_REQUESTS"}, Usage: "exit gracefully after `N` requests (0: never)"},
			&cli.DurationFlag{Name: "request-terminate-timeout", DefaultText: "--timeout + 5s", Usage: "end the worker when a request has run longer than `DURATION`, even inside C (0: never; under magnetd, magnetd kills it)"},
			&cli.DurationFlag{Name: "slowlog-timeout", EnvVars: []string{"MAGNET_SLOWLOG_TIMEOUT"}, Usage: "log the Lua traceback of a request still running after `DURATION` (0: never), like PHP-FPM's request_slowlog_timeout"},
			&cli.StringFlag{Name: "slowlog", EnvVars: []string{"MAGNET_SLOWLOG"}, DefaultText: "the worker's log", Usage: "append the slow log's entries to `FILE`"},
			&cli.StringFlag{Name: "max-rss", EnvVars: []string{"MAGNET_MAX_RSS"}, Usage: "exit gracefully once the resident memory is over `SIZE` after a request (bytes, or with K, M or G; 0: never)"},
			&cli.StringFlag{Name: "status-path", Usage: "SCRIPT_NAME answered with the pool status (needs magnetd's scoreboard)"},
			&cli.StringFlag{Name: "ping-path", Usage: "SCRIPT_NAME answered with \"pong\""},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "debug, info, warn or error"},
			&cli.StringFlag{Name: "init", EnvVars: []string{"MAGNET_INIT"}, Usage: "run the Lua `FILE` once per worker before its first request (requires, connections, warm caches); an error in it fails the start"},
			&cli.BoolFlag{Name: "any-script", EnvVars: []string{"MAGNET_ANY_SCRIPT"}, Usage: "on a TCP listener without --docroot, serve any *.lua file a client names (refused otherwise)"},
			&cli.BoolFlag{Name: "refuse-root", EnvVars: []string{"MAGNET_REFUSE_ROOT"}, Usage: "refuse to start as root"},
			&cli.StringFlag{Name: "allowed-clients", EnvVars: []string{"MAGNET_ALLOWED_CLIENTS"}, DefaultText: "$FCGI_WEB_SERVER_ADDRS, else loopback", Usage: "on a TCP listener, accept only these comma-separated addresses or CIDRs (`LIST`)"},
			&cli.BoolFlag{Name: "sandbox", EnvVars: []string{"MAGNET_SANDBOX"}, Usage: "no os.execute, io.popen, package.loadlib, debug (but traceback) or C modules outside --allow-module; files only under --open-basedir"},
			&cli.StringSliceFlag{Name: "open-basedir", EnvVars: []string{"MAGNET_OPEN_BASEDIR"}, DefaultText: "the docroots", Usage: "with --sandbox, scripts open files only under `DIR` (repeatable; symlinks are resolved)"},
			&cli.StringSliceFlag{Name: "allow-module", EnvVars: []string{"MAGNET_ALLOW_MODULE"}, Usage: "with --sandbox, a C module `NAME` require may load (repeatable)"},
		},
		Action: run,
	}
	if err := app.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "magnet-worker:", err)
		os.Exit(1)
	}
}

func run(ctx *cli.Context) error {
	if ctx.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", ctx.Args().First())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(ctx.String("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("pid", os.Getpid())

	// One thread serves; a second P lets signal delivery run while it waits.
	runtime.GOMAXPROCS(2)

	if err := checkRoot(ctx.Bool("refuse-root"), log); err != nil {
		return err
	}
	fd := 0
	if addr := ctx.String("listen"); addr != "" {
		sock, err := listen(addr, ctx.Int("backlog"))
		if err != nil {
			return err
		}
		defer sock.Close() // removes the unix socket file
		fd = int(sock.File.Fd())
	} else if !inheritedListener() {
		return errors.New("fd 0 is not a listening socket: use --listen, or start me from a web server or spawner")
	}

	if ctx.Duration("busy-poll") < 0 || ctx.Duration("busy-poll") > time.Second {
		return fmt.Errorf("--busy-poll %s: want 0 to 1s", ctx.Duration("busy-poll"))
	}
	memLimit, err := bytesize.Parse(ctx.String("memory-limit"))
	if err != nil {
		return fmt.Errorf("--memory-limit: %w", err)
	}
	maxBody, err := sizeFlag(ctx, "max-body")
	if err != nil {
		return err
	}
	outBuf, err := sizeFlag(ctx, "output-buffer")
	if err != nil {
		return err
	}
	idle := ctx.Duration("idle-timeout")
	if idle == 0 {
		idle = -1 // never
	}
	for _, name := range []string{"idle-timeout", "read-timeout", "send-timeout"} {
		if d := ctx.Duration(name); d < 0 || (d == 0 && name != "idle-timeout") {
			return fmt.Errorf("--%s %s: want a positive duration", name, d)
		}
	}
	if ctx.Int("max-conns") < 0 {
		return fmt.Errorf("--max-conns %d: want 1 or more (0: the default)", ctx.Int("max-conns"))
	}
	cfg := worker.Config{
		ListenFD:     fd,
		IdleTimeout:  idle,
		ReadTimeout:  ctx.Duration("read-timeout"),
		SendTimeout:  ctx.Duration("send-timeout"),
		MaxConns:     ctx.Int("max-conns"),
		Debug:        ctx.Bool("debug"),
		MaxRequests:  ctx.Int("max-requests"),
		DrainTimeout: ctx.Duration("drain-timeout"),
		Timeout:      ctx.Duration("timeout"),
		MemoryLimit:  memLimit,
		MaxBody:      maxBody,
		OutputBuffer: int(outBuf),
		BusyPoll:     ctx.Duration("busy-poll"),
		Logger:       log,
	}
	if cfg.Uploads, err = uploadsFlags(ctx); err != nil {
		return err
	}
	cfg.Modules = luabind.Modules{Path: ctx.String("lua-path"), CPath: ctx.String("lua-cpath")}
	cfg.Init = ctx.String("init")
	cfg.Scripts.DocRoots = ctx.StringSlice("docroot")
	cfg.Scripts.Exts = ctx.StringSlice("ext")
	cfg.Scripts.StatInterval = ctx.Duration("stat-interval")
	cfg.Scripts.NoWatch = !ctx.Bool("watch")
	if err := confine(ctx, &cfg, log); err != nil {
		return err
	}

	slot, err := scoreboard.AttachFromEnv()
	if err != nil {
		log.Warn("scoreboard unavailable", "err", err)
	}
	if slot != nil {
		cfg.Reporter = slotReporter{slot}
	}
	if err := containment(ctx, &cfg, slot); err != nil {
		return err
	}
	cfg.Special = specialPages(ctx.String("status-path"), ctx.String("ping-path"), slot)
	if v := os.Getenv(handoff.EnvVar); v != "" {
		// magnetd's hand-off channel: connections move between workers.
		if cfg.HandoffFD, err = strconv.Atoi(v); err != nil || cfg.HandoffFD <= 0 {
			return fmt.Errorf("%s=%q: want a file descriptor", handoff.EnvVar, v)
		}
	}

	if cfg.Shared, err = sharedDicts(ctx.StringSlice("shared"), fd, log); err != nil {
		return err
	}
	cfg.Settled, cfg.SettledAfter = func() { go trim(log, "first requests") }, settledAfter
	srv, err := worker.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()

	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		sig := <-sigs
		log.Info("stopping gracefully", "signal", sig.String())
		if slot != nil {
			slot.Finishing()
		}
		if sig == syscall.SIGUSR2 {
			srv.Stop()
		} else {
			srv.Shutdown()
		}
	}()

	// Start-up (every linked package's init, the state, --init) touched
	// code and tables the worker never needs again, and so do its first
	// requests (compiling scripts, first calls into the batteries): drop
	// them from its resident set before serving, and once more when those
	// are past, off the loop's thread.
	trim(log, "start")
	log.Info("serving", "listen", listenName(ctx.String("listen")))
	start := time.Now()
	if err := srv.Serve(); err != nil {
		return err
	}
	log.Info("stopped", "requests", srv.Requests(), "uptime", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// containment applies --request-terminate-timeout, --max-rss and the slow
// log. Under
// magnetd (a scoreboard slot) the worker announces its request terminate
// timeout on the board and magnetd kills it; on its own it ends itself.
func containment(ctx *cli.Context, cfg *worker.Config, slot *scoreboard.Slot) error {
	var terminate time.Duration
	if t := ctx.Duration("timeout"); t > 0 {
		terminate = t + 5*time.Second
	}
	if ctx.IsSet("request-terminate-timeout") {
		terminate = ctx.Duration("request-terminate-timeout")
		if terminate < 0 {
			return errors.New("--request-terminate-timeout must not be negative")
		}
	}
	if slot != nil {
		slot.SetRequestTimeout(terminate)
	} else {
		cfg.RequestTimeout = terminate
	}
	if v := ctx.String("max-rss"); v != "" {
		n, err := bytesize.Parse(v)
		if err != nil {
			return fmt.Errorf("--max-rss: %w", err)
		}
		cfg.MaxRSS = n
	}
	cfg.SlowLogTimeout = ctx.Duration("slowlog-timeout")
	if cfg.SlowLogTimeout < 0 {
		return errors.New("--slowlog-timeout must not be negative")
	}
	if p := ctx.String("slowlog"); p != "" && cfg.SlowLogTimeout > 0 {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return fmt.Errorf("--slowlog: %w", err)
		}
		cfg.SlowLog = f // open for the worker's life
	}
	return nil
}

// slotReporter is the scoreboard slot as the worker's Reporter. It adds
// ConnClosed, whose reasons are worker's, which the scoreboard does not
// import.
type slotReporter struct{ *scoreboard.Slot }

func (r slotReporter) ConnClosed(reason worker.CloseReason) {
	switch reason {
	case worker.CloseIdle:
		r.IdleClosed()
	case worker.CloseRead:
		r.ReadTimedOut()
	case worker.CloseSend:
		r.SendTimedOut()
	case worker.CloseLimit:
		r.Refused()
	}
}

var (
	_ worker.ConnReporter = slotReporter{}
	_ worker.SlowReporter = slotReporter{}
	_ worker.StatReporter = slotReporter{}
	_ worker.RSSReporter  = slotReporter{}
)

// sizeFlag reads a size flag whose 0 means no limit, as worker.Config's
// negative value does.
func sizeFlag(ctx *cli.Context, name string) (int64, error) {
	n, err := bytesize.Parse(ctx.String(name))
	if err != nil {
		return 0, fmt.Errorf("--%s: %w", name, err)
	}
	if n == 0 {
		return -1, nil
	}
	if n > 1<<40 {
		return 0, fmt.Errorf("--%s %s: too large", name, ctx.String(name))
	}
	return int64(n), nil
}

// checkRoot warns about running as root, or refuses it with --refuse-root.
// Under magnetd, which warned already, only the refusal applies.
func checkRoot(refuse bool, log *slog.Logger) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if refuse {
		return errors.New("running as root and --refuse-root is set: start me as an unprivileged user (magnetd -u USER)")
	}
	if os.Getenv("MAGNET_SCOREBOARD") == "" {
		log.Warn("RUNNING AS ROOT: every script can read and change anything on this machine; run as an unprivileged user (magnetd -u USER), or pass --refuse-root to make this an error")
	}
	return nil
}

// confine applies the confinement flags: which scripts a TCP listener
// serves, which clients it accepts, and --sandbox.
func confine(ctx *cli.Context, cfg *worker.Config, log *slog.Logger) error {
	sa, err := unix.Getsockname(cfg.ListenFD)
	if err != nil {
		return fmt.Errorf("listen socket: %w", err)
	}
	_, isUnix := sa.(*unix.SockaddrUnix)
	docroots := cfg.Scripts.DocRoots
	switch {
	case len(docroots) > 0:
	case !isUnix && !ctx.Bool("any-script"):
		return errors.New("a TCP listener without --docroot would run any *.lua file on this machine that a client names: give --docroot DIR, or --any-script to accept that risk")
	default:
		log.Warn("no --docroot: any *.lua file on this machine that a client names in SCRIPT_FILENAME runs")
	}
	if !isUnix {
		list, from := ctx.String("allowed-clients"), "--allowed-clients"
		if list == "" {
			list, from = os.Getenv("FCGI_WEB_SERVER_ADDRS"), "FCGI_WEB_SERVER_ADDRS"
		}
		if list == "" {
			cfg.AllowedClients = worker.Loopback
			log.Info("TCP listener: accepting loopback clients only (set --allowed-clients or FCGI_WEB_SERVER_ADDRS for others)")
		} else {
			allowed, err := worker.ParseClients(list)
			if err != nil {
				return fmt.Errorf("%s: %w", from, err)
			}
			cfg.AllowedClients = allowed
			log.Info("TCP listener: accepting only the allowed clients", "from", from, "clients", list)
		}
	}
	if !ctx.Bool("sandbox") {
		if ctx.IsSet("open-basedir") || ctx.IsSet("allow-module") {
			return errors.New("--open-basedir and --allow-module need --sandbox")
		}
		return nil
	}
	sb := &luabind.Sandbox{OpenBasedir: ctx.StringSlice("open-basedir"), AllowModules: ctx.StringSlice("allow-module")}
	if len(sb.OpenBasedir) == 0 {
		sb.OpenBasedir = docroots
	}
	cfg.Sandbox = sb
	log.Info("sandbox", "open_basedir", strings.Join(sb.OpenBasedir, ":"), "modules", strings.Join(sb.AllowModules, ","))
	return nil
}

// listen binds --listen: a unix socket path (or unix:PATH), or HOST:PORT.
func listen(addr string, backlog int) (*socket.Socket, error) {
	cfg := socket.ListenConfig{Backlog: backlog, Mode: socket.DefaultSocketMode()}
	host, port, err := net.SplitHostPort(addr)
	if strings.HasPrefix(addr, "unix:") || strings.Contains(addr, "/") || err != nil {
		cfg.Path = strings.TrimPrefix(addr, "unix:")
		return socket.Listen(cfg)
	}
	if cfg.Port, err = strconv.Atoi(port); err != nil {
		return nil, fmt.Errorf("--listen %s: bad port", addr)
	}
	cfg.Addr = host
	if host != "" && net.ParseIP(strings.Trim(host, "[]")) == nil {
		ips, err := net.LookupIP(host)
		if err != nil || len(ips) == 0 {
			return nil, fmt.Errorf("--listen %s: cannot resolve %s", addr, host)
		}
		cfg.Addr = ips[0].String()
	}
	return socket.Listen(cfg)
}

// inheritedListener reports whether fd 0 is a listening socket, the test a
// libfcgi program makes (getpeername fails with ENOTCONN) made stricter.
func inheritedListener() bool {
	if _, err := unix.Getpeername(0); err != unix.ENOTCONN {
		return false
	}
	return socket.IsListener(0)
}

func listenName(addr string) string {
	if addr == "" {
		return "fd 0"
	}
	return addr
}

// specialPages answers --status-path and --ping-path without Lua.
func specialPages(statusPath, pingPath string, slot *scoreboard.Slot) func(name, query []byte) []byte {
	if statusPath == "" && pingPath == "" {
		return nil
	}
	return func(name, query []byte) []byte {
		switch {
		case pingPath != "" && string(name) == pingPath:
			return []byte("Content-Type: text/plain\r\nCache-Control: no-cache\r\n\r\npong\n")
		case statusPath != "" && string(name) == statusPath:
			if slot == nil {
				return []byte("Status: 503 Service Unavailable\r\nContent-Type: text/plain\r\n\r\nstatus needs magnetd's scoreboard\n")
			}
			format, full := status.ParseQuery(string(query))
			var body bytes.Buffer
			if err := status.RenderBoard(&body, slot.Board(), format, full); err != nil {
				return []byte("Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n" + err.Error() + "\n")
			}
			return append([]byte("Content-Type: "+status.ContentType(format)+"\r\nCache-Control: no-cache\r\n\r\n"), body.Bytes()...)
		}
		return nil
	}
}

// settledAfter is the request after which a worker's pages are trimmed a
// second time.
const settledAfter = 1000

// trim drops the pages of the worker's read-only file mappings from its
// resident set (internal/memtrim).
func trim(log *slog.Logger, after string) {
	if r, err := memtrim.Trim(); errors.Is(err, fs.ErrNotExist) {
		log.Debug("not dropping unused pages: no /proc (a chroot?)", "err", err)
	} else if err != nil {
		log.Warn("dropping unused pages", "after", after, "err", err)
	} else {
		log.Debug("dropped unused pages", "after", after, "mappings", r.Mappings, "bytes", r.Bytes)
	}
}
