package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/magnet-fcgi/magnet/internal/bytesize"
	"github.com/magnet-fcgi/magnet/internal/shdict"
	"github.com/magnet-fcgi/magnet/internal/socket"
)

// options are magnetd's checked command line.
type options struct {
	socketPath string
	addr       string
	port       int
	mode       os.FileMode
	backlog    int

	workers     int
	workersSet  bool
	phpChildren int // -1: not set
	pidFile     string
	noFork      bool

	chroot           string
	sockBeforeChroot bool
	user, group      string
	sockUser         string
	sockGroup        string
	dir              string

	argv []string // worker program and its arguments

	maxRequests int
	// requestTimeout is supervisor.Config.RequestTimeout: the flag's
	// value, 0 (each worker's own) when not given, negative when off.
	requestTimeout    time.Duration
	requestTimeoutSet bool
	maxRSS            uint64 // bytes; 0: none
	drain             time.Duration
	handoffAfter      time.Duration
	ownWorker         bool // the program is magnet-worker: it drains on SIGUSR2
	logFile           string
	logLevel          slog.Level
	accessLog         string

	statusListen string
	statusPath   string
	pingPath     string
	httpAddr     string
	docroot      string

	confinement

	shared []sharedOpt // --shared, in order

	warnings []string // reported once logging is set up
}

// parseOptions checks the flags; each error names the flag at fault.
func parseOptions(c *cli.Context) (*options, error) {
	o := &options{
		socketPath:       c.String("socket"),
		addr:             c.String("addr"),
		port:             c.Int("port"),
		backlog:          c.Int("backlog"),
		workers:          c.Int("children"),
		workersSet:       c.IsSet("children"),
		phpChildren:      -1,
		pidFile:          c.String("pid-file"),
		noFork:           c.Bool("no-fork"),
		chroot:           c.String("chroot"),
		sockBeforeChroot: c.Bool("socket-before-chroot"),
		user:             c.String("user"),
		group:            c.String("group"),
		sockUser:         c.String("socket-user"),
		sockGroup:        c.String("socket-group"),
		dir:              c.String("chdir"),
		maxRequests:      c.Int("max-requests"),
		drain:            c.Duration("drain-timeout"),
		handoffAfter:     c.Duration("handoff-after"),
		logFile:          c.String("log-file"),
		accessLog:        c.String("access-log"),
		statusListen:     c.String("status-listen"),
		statusPath:       c.String("status-path"),
		pingPath:         c.String("ping-path"),
		httpAddr:         c.String("http"),
		docroot:          c.String("docroot"),
	}
	if c.IsSet("request-terminate-timeout") {
		o.requestTimeoutSet = true
		o.requestTimeout = c.Duration("request-terminate-timeout")
		switch {
		case o.requestTimeout < 0:
			return nil, errors.New("--request-terminate-timeout must not be negative")
		case o.requestTimeout == 0:
			o.requestTimeout = -1
		}
	}
	if v := c.String("max-rss"); v != "" {
		n, err := bytesize.Parse(v)
		if err != nil {
			return nil, fmt.Errorf("--max-rss: %w", err)
		}
		o.maxRSS = n
	}
	if err := o.slowlog(c); err != nil {
		return nil, err
	}
	if err := o.parseShared(c.StringSlice("shared")); err != nil {
		return nil, err
	}
	if c.IsSet("php-children") {
		o.phpChildren = c.Int("php-children")
		if o.phpChildren < 0 {
			return nil, errors.New("-C/--php-children must not be negative")
		}
	}
	switch {
	case o.socketPath != "" && o.port != 0:
		return nil, errors.New("-s/--socket and -p/--port: either a unix domain socket or a TCP port, but not both")
	case c.IsSet("port") && (o.port <= 0 || o.port > 65535):
		return nil, fmt.Errorf("-p/--port: invalid port %d", o.port)
	case o.addr != "" && o.socketPath == "" && o.port == 0:
		return nil, errors.New("-a/--addr needs -p/--port")
	case o.workers < 1:
		return nil, fmt.Errorf("-F/--children: need at least 1 worker, got %d", o.workers)
	case o.backlog < 1:
		return nil, fmt.Errorf("-b/--backlog: must be at least 1, got %d", o.backlog)
	case o.maxRequests < 0:
		return nil, errors.New("--max-requests must not be negative")
	case o.drain <= 0:
		return nil, errors.New("--drain-timeout must be positive")
	case o.handoffAfter < 0:
		return nil, errors.New("--handoff-after must not be negative")
	case o.httpAddr != "" && o.docroot == "":
		return nil, errors.New("--http needs --docroot")
	case o.accessLog != "" && o.httpAddr == "":
		return nil, errors.New("--access-log needs --http")
	}
	if o.addr != "" && o.socketPath != "" {
		o.warnings = append(o.warnings, "-a/--addr is ignored with -s/--socket")
	}
	o.mode = socket.DefaultSocketMode()
	if m := c.String("socket-mode"); m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		if err != nil || n > 0o7777 {
			return nil, fmt.Errorf("-M/--socket-mode: invalid octal mode %q", m)
		}
		o.mode = os.FileMode(n)
		if o.socketPath == "" {
			o.warnings = append(o.warnings, "-M/--socket-mode is ignored without -s/--socket")
		}
	}
	if o.socketPath == "" && (o.sockUser != "" || o.sockGroup != "") {
		o.warnings = append(o.warnings, "-U/-G are ignored without -s/--socket")
	}
	if err := o.level(c.String("log-level")); err != nil {
		return nil, err
	}
	if os.Getuid() != 0 {
		if os.Geteuid() != os.Getuid() || os.Getegid() != os.Getgid() {
			return nil, errors.New("don't apply a set-uid or set-gid bit to this binary")
		}
		for _, f := range []struct {
			name string
			v    *string
		}{{"-c/--chroot", &o.chroot}, {"-u/--user", &o.user}, {"-g/--group", &o.group}, {"-U/--socket-user", &o.sockUser}, {"-G/--socket-group", &o.sockGroup}} {
			if *f.v != "" {
				o.warnings = append(o.warnings, f.name+" is ignored: not running as root")
				*f.v = ""
			}
		}
		if o.sockBeforeChroot {
			o.warnings = append(o.warnings, "-S/--socket-before-chroot is ignored: not running as root")
			o.sockBeforeChroot = false
		}
	}
	if err := o.parseConfinement(c); err != nil {
		return nil, err
	}
	if err := o.program(c); err != nil {
		return nil, err
	}
	return o, nil
}

// sharedOpt is one --shared NAME=SIZE.
type sharedOpt struct {
	name string
	size int64
}

// parseShared checks the --shared dictionaries: names usable as
// magnet.shared.NAME, each once, sizes the store can lay out.
func (o *options) parseShared(vals []string) error {
	for _, v := range vals {
		name, sz, ok := strings.Cut(v, "=")
		if !ok || !shdict.ValidName(name) {
			return fmt.Errorf("--shared %q: want NAME=SIZE, NAME of letters, digits and _ (up to 31, not starting with a digit)", v)
		}
		n, err := bytesize.Parse(sz)
		if err != nil {
			return fmt.Errorf("--shared %s: %w", name, err)
		}
		if n < shdict.MinSize || n > shdict.MaxSize {
			return fmt.Errorf("--shared %s: size %s out of range (%dK to %dG)", name, sz, shdict.MinSize>>10, shdict.MaxSize>>30)
		}
		for _, s := range o.shared {
			if s.name == name {
				return fmt.Errorf("--shared %s: declared twice", name)
			}
		}
		o.shared = append(o.shared, sharedOpt{name: name, size: int64(n)})
	}
	return nil
}

// slowlog passes --slowlog-timeout and --slowlog to the workers, the file
// as an absolute path since their working directory may differ.
func (o *options) slowlog(c *cli.Context) error {
	d := c.Duration("slowlog-timeout")
	if d < 0 {
		return errors.New("--slowlog-timeout must not be negative")
	}
	if d > 0 {
		o.settings = append(o.settings, "MAGNET_SLOWLOG_TIMEOUT="+d.String())
	}
	if p := c.String("slowlog"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			return fmt.Errorf("--slowlog: %w", err)
		}
		o.settings = append(o.settings, "MAGNET_SLOWLOG="+abs)
	}
	return nil
}

func (o *options) level(s string) error {
	switch strings.ToLower(s) {
	case "debug":
		o.logLevel = slog.LevelDebug
	case "info", "":
		o.logLevel = slog.LevelInfo
	case "warn", "warning":
		o.logLevel = slog.LevelWarn
	case "error":
		o.logLevel = slog.LevelError
	default:
		return fmt.Errorf("--log-level: unknown level %q (debug, info, warn, error)", s)
	}
	return nil
}

// program picks the worker command line: the arguments after "--", else
// -f through /bin/sh, else magnet-worker beside the magnetd binary.
func (o *options) program(c *cli.Context) error {
	custom := c.Args().Len() > 0 || c.String("fcgi-app") != ""
	if custom && (o.statusPath != "" || o.pingPath != "") {
		o.warnings = append(o.warnings, "--status-path and --ping-path are answered by magnet-worker only; ignored for another program")
	}
	switch {
	case c.Args().Len() > 0:
		o.argv = c.Args().Slice()
	case c.String("fcgi-app") != "":
		o.argv = []string{"/bin/sh", "-c", "exec " + c.String("fcgi-app")}
	default:
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding magnet-worker: %w", err)
		}
		o.argv = []string{defaultWorker(exe, o.chroot)}
		if c.IsSet("log-level") {
			o.argv = append(o.argv, "--log-level", strings.ToLower(o.logLevel.String()))
		}
		if o.docroot != "" {
			abs, err := filepath.Abs(o.docroot)
			if err != nil {
				return fmt.Errorf("--docroot: %w", err)
			}
			o.argv = append(o.argv, "--docroot", abs)
		}
		if o.statusPath != "" {
			o.argv = append(o.argv, "--status-path", o.statusPath)
		}
		if o.pingPath != "" {
			o.argv = append(o.argv, "--ping-path", o.pingPath)
		}
		// On stop, the workers wait for the web server to close its
		// connections; they end themselves a little before the kill.
		o.ownWorker = true
		o.argv = append(o.argv, "--drain-timeout", (o.drain - min(o.drain/10, time.Second)).String())
	}
	return nil
}

// programPath resolves and checks the worker program: a name without a
// slash is looked up in $PATH; with -c it must exist inside the chroot.
func (o *options) programPath() (string, error) {
	p := o.argv[0]
	if !strings.Contains(p, "/") && o.chroot == "" {
		lp, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("worker program: %w", err)
		}
		return lp, nil
	}
	check := p
	if !filepath.IsAbs(p) && o.dir != "" {
		check = filepath.Join(o.dir, p)
	}
	if o.chroot != "" {
		check = filepath.Join(o.chroot, check)
	}
	fi, err := os.Stat(check)
	if err != nil {
		return "", fmt.Errorf("worker program: %w", err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("worker program %s is not an executable file", check)
	}
	return p, nil
}
