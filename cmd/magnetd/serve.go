package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/magnet-fcgi/magnet/internal/daemon"
	"github.com/magnet-fcgi/magnet/internal/socket"
)

// serve is the command's action: check the flags, open the pid file, bind
// or inherit the socket, daemonize unless told not to, and supervise.
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
	detached := daemon.IsDaemon()

	// Logging.
	var (
		logw    io.Writer = os.Stderr
		logFile *daemon.LogFile
	)
	if o.logFile != "" {
		if logFile, err = daemon.OpenLogFile(o.logFile); err != nil {
			return fmt.Errorf("--log-file: %w", err)
		}
		defer logFile.Close()
		logw = logFile
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: o.logLevel}))
	if !detached {
		for _, w := range o.warnings {
			fmt.Fprintf(os.Stderr, "magnetd: warning: %s\n", w)
		}
	}

	// Users and groups (root only; parseOptions cleared them otherwise).
	workerID, err := daemon.LookupIdentity(o.user, o.group)
	if err != nil {
		return fmt.Errorf("-u/-g: %w", err)
	}
	sockID, err := daemon.LookupIdentity(o.sockUser, o.sockGroup)
	if err != nil {
		return fmt.Errorf("-U/-G: %w", err)
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

	// The socket: inherited from a daemonizing parent, bound, inherited on
	// fd 0 from a web server, or private for --http alone.
	var (
		sock      *socket.Socket
		pidFile   *daemon.PIDFile
		notify    func(error) // a daemon's report to its parent
		ready     func()
		inherited bool
		tempDir   string
	)
	bindPath := o.socketPath
	if bindPath != "" && o.chroot != "" && !o.sockBeforeChroot {
		bindPath = filepath.Join(o.chroot, bindPath)
	}
	switch {
	case detached:
		owned := bindPath
		sock, notify, err = daemon.DaemonSocket(owned)
		if err != nil {
			return err
		}
		ready = func() { notify(nil) }
		defer func() {
			if err != nil {
				notify(err) // the parent reports it and exits 255
			}
		}()
		if owned == "" && o.port == 0 && sock.Network == "unix" {
			// The parent made a private socket for --http.
			tempDir = filepath.Dir(sock.Addr)
			sock.SetOwned(sock.Addr)
		}
	case o.socketPath != "" || o.port != 0 || !socket.IsListener(0) && o.httpAddr != "":
		if o.pidFile != "" {
			if pidFile, err = daemon.OpenPIDFile(o.pidFile); err != nil {
				return fmt.Errorf("-P/--pid-file: %w", err)
			}
		}
		lc := socket.ListenConfig{Path: bindPath, Addr: o.addr, Port: o.port, Mode: o.mode, UID: sockID.UID, GID: sockID.GID, Backlog: o.backlog}
		if bindPath == "" && o.port == 0 {
			if tempDir, err = os.MkdirTemp("", "magnetd-"); err != nil {
				pidFile.Abandon()
				return fmt.Errorf("--http: %w", err)
			}
			// Only the master connects; the workers accept on fd 0.
			lc.Path, lc.Mode, lc.UID, lc.GID = filepath.Join(tempDir, "fcgi.sock"), 0o600, 0, 0
		}
		if sock, err = socket.Listen(lc); err != nil {
			if pidFile != nil {
				pidFile.Abandon()
			}
			if tempDir != "" {
				os.RemoveAll(tempDir)
			}
			return err
		}
	case socket.IsListener(0):
		if sock, err = socket.FileSocket(0, ""); err != nil {
			return err
		}
		inherited = true
		if o.pidFile != "" {
			if pidFile, err = daemon.OpenPIDFile(o.pidFile); err != nil {
				return fmt.Errorf("-P/--pid-file: %w", err)
			}
		}
	default:
		return errors.New("no socket given (use either -p or -s, or start with a listening socket on fd 0)")
	}
	defer func() {
		if tempDir != "" {
			os.RemoveAll(tempDir)
		}
	}()

	workers := o.workers
	if inherited && !o.workersSet {
		workers = 1
		if n, err := strconv.Atoi(os.Getenv("PHP_FCGI_CHILDREN")); err == nil && n > 0 {
			workers = n
		}
	}

	// Daemonize: the first process exits once the daemon's workers run.
	if !o.noFork && !inherited && !detached {
		var stderr *os.File
		if logFile != nil {
			stderr = logFile.File()
		}
		d, err := daemon.StartDaemon(sock, stderr)
		if err != nil {
			pidFile.Abandon()
			sock.Close()
			return err
		}
		if pidFile != nil {
			if err := pidFile.Write(d.PID()); err != nil {
				fmt.Fprintf(os.Stderr, "magnetd: -P/--pid-file: %v\n", err)
			}
		}
		sock.File.Close() // the daemon owns the socket now
		if err := d.Wait(); err != nil {
			if pidFile != nil {
				daemon.RemovePIDFile(pidFile.Path, d.PID())
			}
			sock.Unlink()
			return err
		}
		tempDir = "" // the daemon removes it
		fmt.Printf("magnetd: master started successfully: PID: %d\n", d.PID())
		if logFile == nil {
			fmt.Fprintln(os.Stderr, "magnetd: note: no --log-file, so the daemon's log is discarded (or use -n)")
		}
		return nil
	}
	if pidFile != nil {
		if err := pidFile.Write(os.Getpid()); err != nil {
			sock.Close()
			return fmt.Errorf("-P/--pid-file: %w", err)
		}
	}
	pidPath := o.pidFile
	defer func() {
		if pidPath != "" {
			if err := daemon.RemovePIDFile(pidPath, os.Getpid()); err != nil {
				log.Warn("removing pid file", "err", err)
			}
		}
	}()
	defer sock.Close()

	return runPool(o, poolConfig{
		path:      path,
		workerID:  workerID,
		workers:   workers,
		inherited: inherited,
		sock:      sock,
		log:       log,
		logFile:   logFile,
		ready:     ready,
	})
}

// workerEnv is the workers' environment: magnetd's own, without what
// magnetd consumed, with -C and --max-requests applied.
func workerEnv(base []string, o *options, inherited bool) []string {
	drop := map[string]bool{daemon.DaemonEnv: true, "MAGNET_SCOREBOARD": true}
	if o.phpChildren >= 0 || inherited {
		drop["PHP_FCGI_CHILDREN"] = true
	}
	if o.maxRequests > 0 {
		drop["PHP_FCGI_MAX_REQUESTS"] = true
	}
	var env []string
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			env = append(env, kv)
		}
	}
	if o.phpChildren >= 0 {
		env = append(env, "PHP_FCGI_CHILDREN="+strconv.Itoa(o.phpChildren))
	}
	if o.maxRequests > 0 {
		env = append(env, "PHP_FCGI_MAX_REQUESTS="+strconv.Itoa(o.maxRequests))
	}
	return env
}
