// Command magnetd is the magnet master: a prefork FastCGI supervisor and a
// drop-in for spawn-fcgi. It binds or inherits the listen socket, starts N
// worker processes (magnet-worker by default) with the socket as their fd
// 0, restarts the ones that die, reloads them without dropping a request on
// SIGHUP and stops them on SIGTERM. It never runs Lua and builds without
// cgo.
package main

import (
	"fmt"
	"os"
	"time"

	"github.com/magnet-fcgi/magnet/internal/socket"
	"github.com/magnet-fcgi/magnet/internal/version"
	"github.com/urfave/cli/v2"
)

// exitFailure is spawn-fcgi's exit code for every error.
const exitFailure = 255

func main() {
	os.Exit(run(os.Args))
}

// run executes magnetd with the given arguments and returns the exit code.
func run(args []string) int {
	if len(args) < 2 && !socket.IsListener(0) {
		// spawn-fcgi shows its help and fails when given no argument; with
		// a listening socket on fd 0 (lighttpd's bin-path, spawn-fcgi's
		// program) no argument means: serve it, as php-cgi does.
		newApp().Run([]string{args[0], "--help"})
		return exitFailure
	}
	if err := newApp().Run(fixArgs(args)); err != nil {
		fmt.Fprintf(os.Stderr, "magnetd: %v\n", err)
		return exitFailure
	}
	return 0
}

// fixArgs rewrites spawn-fcgi's "-?" to "-h"; arguments after "--" belong
// to the worker program and are left alone.
func fixArgs(args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if a == "-?" {
			out[i] = "-h"
		}
	}
	return out
}

const (
	catSpawn   = "spawn-fcgi options"
	catRoot    = "spawn-fcgi options, root only (ignored with a warning otherwise)"
	catPool    = "magnetd options"
	catConfine = "confinement"
)

func newApp() *cli.App {
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "magnetd v%s (spawn-fcgi compatible, ipv6) - supervises FastCGI processes\n", c.App.Version)
	}
	return &cli.App{
		Name:                   "magnetd",
		Usage:                  "prefork FastCGI supervisor for magnet workers; a drop-in for spawn-fcgi",
		UsageText:              "magnetd [options] [-- <fcgiapp> [fcgi app arguments]]",
		Version:                version.String(),
		Description:            description,
		HideHelpCommand:        true,
		UseShortOptionHandling: true,
		Flags:                  flags(),
		Action:                 serve,
		OnUsageError: func(_ *cli.Context, err error, _ bool) error {
			return err
		},
		ExitErrHandler: func(*cli.Context, error) {},
	}
}

const description = `magnetd binds a socket (-s, or -a/-p) or takes over a listening socket on
fd 0 (when a web server spawns it through lighttpd's bin-path), starts the
worker program -F times with that socket as fd 0 and supervises them.

Default worker program: magnet-worker in magnetd's own directory, else
magnet-worker in $PATH.

Started with no argument at all and a listening socket on fd 0 (lighttpd's
"bin-path" => "/usr/local/bin/magnetd", spawn-fcgi -s SOCK -- magnetd), it
serves that socket with $PHP_FCGI_CHILDREN workers; with no argument and no
socket it shows this help and exits 255, as spawn-fcgi does.

A start fails (exit 255, the reason on stderr) when no worker gets ready
within 5 seconds, say because a worker option is wrong.

Signals: SIGHUP reloads (new workers first, then the old ones finish their
request and exit, killed after --drain-timeout); SIGTERM, SIGINT and SIGQUIT
stop gracefully (a second SIGTERM/SIGINT kills at once), removing the unix
socket and the pid file; SIGUSR1 reopens --log-file and --access-log.

Where magnetd differs from spawn-fcgi:
  - It stays running and supervises the workers instead of exiting. Without
    -n it daemonizes (it starts itself again detached; the first process
    exits 0 once the workers run). -P names the master's pid file, written
    with -n as well; the file's old content is kept until the socket is
    bound, so a refused start leaves a running instance's pid file alone.
  - Started with a listening socket on fd 0 and neither -s nor -p, it uses
    that socket and stays in the foreground; -F then defaults to
    $PHP_FCGI_CHILDREN (else 1), which is not passed on to the workers.
  - -u/-g apply to the workers; the master keeps root so that it can
    remove the socket and pid file and reopen its logs. -c chroots the
    workers only (the program path is resolved inside the chroot; without
    -S the socket path is too). -d is the workers' working directory.
  - A program name without a slash is looked up in $PATH.
  - An existing socket path that is not a socket is refused, not removed;
    -a with -s, and -M/-U/-G with -p, are ignored with a warning.`

func flags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Category: catSpawn, Name: "fcgi-app", Aliases: []string{"f"}, Usage: "`PATH` of the fcgi application, run with /bin/sh (deprecated; ignored if <fcgiapp> is given)"},
		&cli.StringFlag{Category: catSpawn, Name: "chdir", Aliases: []string{"d"}, Usage: "workers' working `DIRECTORY`"},
		&cli.StringFlag{Category: catSpawn, Name: "addr", Aliases: []string{"a"}, Usage: "bind to IPv4/IPv6 `ADDRESS` (default 0.0.0.0)"},
		&cli.IntFlag{Category: catSpawn, Name: "port", Aliases: []string{"p"}, DefaultText: "none", Usage: "bind to TCP `PORT`"},
		&cli.StringFlag{Category: catSpawn, Name: "socket", Aliases: []string{"s"}, Usage: "bind to unix domain socket `PATH`"},
		&cli.StringFlag{Category: catSpawn, Name: "socket-mode", Aliases: []string{"M"}, Usage: "unix domain socket `MODE`, octal (default: read+write for user and group as far as umask allows it)"},
		&cli.IntFlag{Category: catSpawn, Name: "php-children", Aliases: []string{"C"}, DefaultText: "not set", Usage: "set PHP_FCGI_CHILDREN=`N` for the workers (PHP only)"},
		&cli.IntFlag{Category: catSpawn, Name: "children", Aliases: []string{"F"}, Value: 1, Usage: "number of worker processes `N`"},
		&cli.IntFlag{Category: catSpawn, Name: "backlog", Aliases: []string{"b"}, Value: 1024, Usage: "listen `BACKLOG` of the socket"},
		&cli.StringFlag{Category: catSpawn, Name: "pid-file", Aliases: []string{"P"}, Usage: "write the master's pid to `PATH`"},
		&cli.BoolFlag{Category: catSpawn, Name: "no-fork", Aliases: []string{"n"}, DisableDefaultText: true, Usage: "stay in the foreground (for daemontools, systemd Type=simple)"},
		&cli.BoolFlag{Category: catSpawn, Name: "test", Aliases: []string{"t"}, DisableDefaultText: true, Usage: "check the options (worker program, --docroot, users, files) and exit, like nginx -t"},
		&cli.StringFlag{Category: catRoot, Name: "chroot", Aliases: []string{"c"}, Usage: "chroot the workers to `DIRECTORY`"},
		&cli.BoolFlag{Category: catRoot, Name: "socket-before-chroot", Aliases: []string{"S"}, DisableDefaultText: true, Usage: "create the socket outside the chroot (default: the socket path is inside it)"},
		&cli.StringFlag{Category: catRoot, Name: "user", Aliases: []string{"u"}, Usage: "run the workers as `USER`"},
		&cli.StringFlag{Category: catRoot, Name: "group", Aliases: []string{"g"}, Usage: "run the workers as `GROUP` (default: primary group of -u)"},
		&cli.StringFlag{Category: catRoot, Name: "socket-user", Aliases: []string{"U"}, Usage: "unix domain socket owner `USER` (default: -u)"},
		&cli.StringFlag{Category: catRoot, Name: "socket-group", Aliases: []string{"G"}, Usage: "unix domain socket `GROUP` (default: -g)"},
		&cli.IntFlag{Category: catPool, Name: "max-requests", DefaultText: "never", Usage: "recycle a worker after `N` requests (sets PHP_FCGI_MAX_REQUESTS)"},
		&cli.DurationFlag{Category: catPool, Name: "request-terminate-timeout", DefaultText: "the worker's --timeout + 5s", Usage: "kill a worker whose request has run longer than `DURATION`, even inside C (0: never)"},
		&cli.StringFlag{Category: catPool, Name: "max-rss", Usage: "recycle a worker whose resident memory is over `SIZE` (e.g. 256M) after a request (sets MAGNET_MAX_RSS)"},
		&cli.DurationFlag{Category: catPool, Name: "slowlog-timeout", Usage: "workers log the Lua traceback of a request still running after `DURATION` (sets MAGNET_SLOWLOG_TIMEOUT; default: never)"},
		&cli.StringFlag{Category: catPool, Name: "slowlog", DefaultText: "the log", Usage: "workers append their slow log entries to `FILE` (sets MAGNET_SLOWLOG)"},
		&cli.StringSliceFlag{Category: catPool, Name: "shared", Usage: "a dictionary of `NAME=SIZE` (e.g. sessions=64M) that every worker's scripts share as magnet.shared.NAME (repeatable); it survives worker restarts and reloads, not a stop"},
		&cli.DurationFlag{Category: catPool, Name: "drain-timeout", Value: 30 * time.Second, Usage: "`DURATION` old workers may take to finish requests on reload and stop before SIGKILL"},
		&cli.DurationFlag{Category: catPool, Name: "handoff-after", Value: 10 * time.Millisecond, Usage: "a worker inside one request for `DURATION` hands its idle keep-alive connections to idle workers (0: never)"},
		&cli.StringFlag{Category: catPool, Name: "log-file", Usage: "log to `PATH` instead of stderr (reopened on SIGUSR1)"},
		&cli.StringFlag{Category: catPool, Name: "log-level", Value: "info", Usage: "`LEVEL`: debug, info, warn or error"},
		&cli.StringFlag{Category: catPool, Name: "access-log", Usage: "write an access log of the --http front to `PATH`"},
		&cli.StringFlag{Category: catPool, Name: "status-listen", Usage: "serve the status page over HTTP on `ADDR`"},
		&cli.StringFlag{Category: catPool, Name: "status-path", Usage: "answer status requests for `URI` through the FastCGI socket (like pm.status_path)"},
		&cli.StringFlag{Category: catPool, Name: "ping-path", Usage: "answer ping requests for `URI` through the FastCGI socket (like ping.path)"},
		&cli.StringFlag{Category: catPool, Name: "http", Usage: "serve HTTP on `ADDR` directly (development front)"},
		&cli.StringFlag{Category: catPool, Name: "docroot", Usage: "document root `DIR` for --http; also passed to the default worker, which then serves only scripts under it"},
		&cli.BoolFlag{Category: catConfine, Name: "refuse-root", Usage: "refuse to run the workers as root: give -u (like PHP-FPM without -R)"},
		&cli.BoolFlag{Category: catConfine, Name: "clear-env", Value: true, Usage: "start the workers with only PATH, TZ, LUA_PATH, LUA_CPATH, FCGI_WEB_SERVER_ADDRS, MAGNET_* and PHP_FCGI_* of magnetd's environment, plus --env (false: all of it)"},
		&cli.StringSliceFlag{Category: catConfine, Name: "env", Usage: "pass `NAME[=VALUE]` to the workers, VALUE or else magnetd's own (repeatable)"},
		&cli.StringFlag{Category: catConfine, Name: "allowed-clients", Usage: "on a TCP socket, the workers accept only these comma-separated addresses or CIDRs (`LIST`; default: $FCGI_WEB_SERVER_ADDRS, else loopback)"},
		&cli.BoolFlag{Category: catConfine, Name: "any-script", Usage: "on a TCP socket without --docroot, let magnet-worker run any *.lua file a client names (refused otherwise)"},
		&cli.BoolFlag{Category: catConfine, Name: "sandbox", Usage: "magnet-worker's --sandbox: no os.execute, io.popen, package.loadlib, debug or C modules; files only under --open-basedir"},
		&cli.StringSliceFlag{Category: catConfine, Name: "open-basedir", Usage: "with --sandbox, scripts open files only under `DIR` (repeatable; default: --docroot)"},
		&cli.StringSliceFlag{Category: catConfine, Name: "allow-module", Usage: "with --sandbox, a C module `NAME` require may load (repeatable)"},
	}
}
