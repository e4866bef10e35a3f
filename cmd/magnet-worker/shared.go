package main

import (
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/internal/bytesize"
	"github.com/magnet-fcgi/magnet/internal/shdict"
)

// sharedDicts opens the dictionaries of magnet.shared. Under magnetd they
// are inherited (MAGNET_SHARED names their fds) and --shared is not
// needed. A standalone worker maps each --shared NAME=SIZE from a file in
// /dev/shm named after its listening socket, so that the workers a spawner
// starts on one socket (spawn-fcgi -F N) share it; the file outlives them
// until it is removed. Without a socket address it falls back to a store
// of its own.
func sharedDicts(flags []string, listenFD int, log *slog.Logger) ([]*shdict.Dict, error) {
	if v, ok := os.LookupEnv(shdict.EnvVar); ok {
		os.Unsetenv(shdict.EnvVar) // not for the scripts' children
		if len(flags) > 0 {
			log.Warn("--shared is ignored: the dictionaries come from magnetd")
		}
		return shdict.FromEnv(v)
	}
	var dicts []*shdict.Dict
	fail := func(err error) ([]*shdict.Dict, error) {
		for _, d := range dicts {
			d.Close()
		}
		return nil, err
	}
	sock := socketID(listenFD)
	for _, f := range flags {
		name, sz, ok := strings.Cut(f, "=")
		if !ok || !shdict.ValidName(name) {
			return fail(fmt.Errorf("--shared %q: want NAME=SIZE, NAME of letters, digits and _", f))
		}
		size, err := bytesize.Parse(sz)
		if err != nil {
			return fail(fmt.Errorf("--shared %s: %w", name, err))
		}
		var d *shdict.Dict
		if sock == "" {
			log.Warn("--shared: the listening socket has no address; this worker's dictionary is its own", "dict", name)
			d, err = shdict.Create(name, int64(size))
		} else {
			d, err = shdict.OpenFile(sharedPath(sock, name), name, int64(size))
		}
		if err != nil {
			return fail(fmt.Errorf("--shared %s: %w", name, err))
		}
		dicts = append(dicts, d)
	}
	return dicts, nil
}

// socketID names the listening socket: "unix:PATH" or "tcp:ADDR:PORT".
func socketID(fd int) string {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return ""
	}
	switch a := sa.(type) {
	case *unix.SockaddrUnix:
		if a.Name == "" || a.Name[0] == '@' {
			return ""
		}
		p, err := filepath.Abs(a.Name)
		if err != nil {
			return ""
		}
		return "unix:" + p
	case *unix.SockaddrInet4:
		return "tcp:" + strconv.Itoa(int(a.Addr[0])) + "." + strconv.Itoa(int(a.Addr[1])) + "." + strconv.Itoa(int(a.Addr[2])) + "." + strconv.Itoa(int(a.Addr[3])) + ":" + strconv.Itoa(a.Port)
	case *unix.SockaddrInet6:
		return "tcp6:" + string(a.Addr[:]) + ":" + strconv.Itoa(a.Port)
	}
	return ""
}

// sharedPath is the file of dictionary name for the socket: per user, per
// socket, per name.
func sharedPath(sock, name string) string {
	h := fnv.New64a()
	h.Write([]byte(sock))
	dir := "/dev/shm"
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		dir = os.TempDir()
	}
	return filepath.Join(dir, fmt.Sprintf("magnet-shared-%d-%016x-%s", os.Geteuid(), h.Sum64(), name))
}
