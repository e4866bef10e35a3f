package main

import (
	"log/slog"
	"os"
	"syscall"

	"github.com/magnet-fcgi/magnet/internal/daemon"
	"github.com/magnet-fcgi/magnet/internal/socket"
	"github.com/magnet-fcgi/magnet/supervisor"
)

// poolConfig is what the worker pool needs beyond the options: the program, the
// workers' identity and count, the socket, where to log, and what to call
// once the workers run.
type poolConfig struct {
	path      string
	workerID  daemon.Identity
	workers   int
	inherited bool
	sock      *socket.Socket
	log       *slog.Logger
	logFile   *daemon.LogFile
	ready     func()
}

// runPool starts the fronts and supervises the workers until magnetd stops.
func runPool(o *options, p poolConfig) error {
	log, logFile, sock := p.log, p.logFile, p.sock
	if os.Geteuid() == 0 && p.workerID.UID == 0 {
		log.Warn(rootWarning)
	}
	cfg := supervisor.Config{
		Path:           p.path,
		Argv:           o.argv,
		Env:            workerEnv(os.Environ(), o, p.inherited),
		Dir:            o.dir,
		Chroot:         o.chroot,
		Credential:     p.workerID.Credential(),
		Workers:        p.workers,
		DrainTimeout:   o.drain,
		RequestTimeout: o.requestTimeout,
		HandoffAfter:   o.handoffAfter,
		Socket:         sock,
		Logger:         log,
		Ready:          p.ready,
		StartTimeout:   startTimeout,
		Reopen: func() {
			if logFile != nil {
				if err := logFile.Reopen(); err != nil {
					log.Error("reopening log file", "err", err)
				}
			}
		},
	}
	if o.ownWorker {
		cfg.StopSignal = syscall.SIGUSR2 // magnet-worker's full stop
	}
	if o.chroot != "" && cfg.Dir == "" {
		cfg.Dir = "/"
	}
	fronts, err := startFronts(o, &cfg, log)
	if err != nil {
		return err
	}
	defer fronts.close()
	stopFronts := cfg.Stopping
	cfg.Stopping = func() {
		// New clients fail at once rather than wait for workers that stop.
		if err := sock.Unlink(); err != nil {
			log.Warn("removing socket", "err", err)
		}
		if stopFronts != nil {
			stopFronts()
		}
	}
	sup, err := supervisor.New(cfg)
	if err != nil {
		return err
	}
	if err := sup.Run(); err != nil {
		log.Error("supervisor", "err", err)
		return err
	}
	log.Info("magnetd stopped")
	return nil
}
