package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/magnet-fcgi/magnet/internal/daemon"
)

// serve is the command's action: check the flags, open the pid file, bind
// or inherit the socket, daemonize unless told not to, and supervise. Each
// step removes what it made when a later one fails.
func serve(c *cli.Context) (err error) {
	// A reload or log reopen that comes before the workers run (say, right
	// after the pid file appears) must not kill the master; the supervisor
	// takes these signals over when it starts.
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1)
	o, err := parseOptions(c)
	if err != nil {
		return err
	}
	path, err := o.programPath()
	if err != nil {
		return err
	}
	if err := checkOptions(o); err != nil {
		return err
	}
	if c.Bool("test") {
		return testConfig(o, path)
	}
	detached := daemon.IsChild()
	logFile, log, err := openLog(o, detached)
	if err != nil {
		return err
	}
	if logFile != nil {
		defer logFile.Close()
		if detached {
			// The parent made the log file the daemon's stderr: follow
			// it when SIGUSR1 reopens it.
			logFile.FollowStderr()
		}
	}
	workerID, sockID, err := identities(o, detached)
	if err != nil {
		return err
	}
	l, err := openListener(o, sockID, detached)
	if err != nil {
		return err
	}
	if !o.noFork && !l.inherited && !detached {
		exe, err := os.Executable()
		if err != nil {
			l.abandon()
			return fmt.Errorf("daemonizing: %w", err)
		}
		return l.handOff(exe, os.Args, logFile)
	}
	defer func() { l.close(err, log) }()
	if err := l.pid.write(os.Getpid()); err != nil {
		return err
	}
	return runPool(o, poolConfig{
		path:      path,
		workerID:  workerID,
		workers:   workerCount(o, l.inherited),
		inherited: l.inherited,
		sock:      l.sock,
		log:       log,
		logFile:   logFile,
		ready:     l.ready(),
	})
}

// openLog opens --log-file, or logs to stderr without one, and prints the
// warnings about the flags (a daemon child's parent printed them).
func openLog(o *options, detached bool) (*daemon.LogFile, *slog.Logger, error) {
	var (
		logw    io.Writer = os.Stderr
		logFile *daemon.LogFile
	)
	if o.logFile != "" {
		var err error
		if logFile, err = daemon.OpenLogFile(o.logFile); err != nil {
			return nil, nil, fmt.Errorf("--log-file: %w", err)
		}
		logw = logFile
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: o.logLevel}))
	if !detached {
		for _, w := range o.warnings {
			fmt.Fprintf(os.Stderr, "magnetd: warning: %s\n", w)
		}
	}
	return logFile, log, nil
}

// identities looks up the workers' user and group (-u/-g) and the socket's
// owner (-U/-G, defaulting to the workers'). Both are zero unless root.
func identities(o *options, detached bool) (workerID, sockID daemon.Identity, err error) {
	workerID, err = daemon.LookupIdentity(o.user, o.group)
	if err != nil {
		return workerID, sockID, fmt.Errorf("-u/-g: %w", err)
	}
	sockID, err = daemon.LookupIdentity(o.sockUser, o.sockGroup)
	if err != nil {
		return workerID, sockID, fmt.Errorf("-U/-G: %w", err)
	}
	if workerID.UID != 0 && workerID.GID == 0 && !detached {
		fmt.Fprintf(os.Stderr, "magnetd: warning: couldn't find the group of uid %d and no group was given, so only the user privileges will be dropped\n", workerID.UID)
	}
	if sockID.UID == 0 {
		sockID.UID = workerID.UID
	}
	if sockID.GID == 0 {
		sockID.GID = workerID.GID
	}
	return workerID, sockID, nil
}

// workerCount is -F; on a socket inherited on fd 0 without -F it is
// $PHP_FCGI_CHILDREN, else 1, as a web server that spawns PHP means it.
func workerCount(o *options, inherited bool) int {
	if !inherited || o.workersSet {
		return o.workers
	}
	if n, err := strconv.Atoi(os.Getenv("PHP_FCGI_CHILDREN")); err == nil && n > 0 {
		return n
	}
	return 1
}

// maxRSSEnv tells magnet-worker its --max-rss, in bytes.
const maxRSSEnv = "MAGNET_MAX_RSS"

// workerEnv is the workers' environment: magnetd's own (under
// --clear-env only what keptEnv keeps), without what magnetd consumed,
// with -C, --max-requests, --max-rss, the confinement settings and --env
// applied.
func workerEnv(base []string, o *options, inherited bool) []string {
	drop := map[string]bool{daemon.EnvVar: true, "MAGNET_SCOREBOARD": true}
	for _, kv := range append(o.settings, o.env...) {
		k, _, _ := strings.Cut(kv, "=")
		drop[k] = true
	}
	if o.phpChildren >= 0 || inherited {
		drop["PHP_FCGI_CHILDREN"] = true
	}
	if o.maxRequests > 0 {
		drop["PHP_FCGI_MAX_REQUESTS"] = true
	}
	if o.maxRSS > 0 {
		drop[maxRSSEnv] = true
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] && (!o.clearEnv || keptEnv(k)) {
			env = append(env, kv)
		}
	}
	env = append(env, o.settings...)
	env = append(env, o.env...)
	if o.phpChildren >= 0 {
		env = append(env, "PHP_FCGI_CHILDREN="+strconv.Itoa(o.phpChildren))
	}
	if o.maxRequests > 0 {
		env = append(env, "PHP_FCGI_MAX_REQUESTS="+strconv.Itoa(o.maxRequests))
	}
	if o.maxRSS > 0 {
		env = append(env, maxRSSEnv+"="+strconv.FormatUint(o.maxRSS, 10))
	}
	return env
}
