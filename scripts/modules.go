package scripts

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/magnet-fcgi/magnet/luabind"
)

// Modules: a file that require loaded is watched as a script is (or
// stat'ed on every Lookup where inotify cannot watch it). When one
// changes, the next Lookup drops every file-loaded module from
// package.loaded (luabind.State.ReloadModules), so the request that
// follows, and each later one, requires the new code. Each worker has its
// own watches: every worker reloads before its next request.

// module is one module file Lookup checks.
type module struct {
	mtime   unix.Timespec // the file when loaded, for those checked by stat
	size    int64
	ino     uint64
	watched bool // inotify reports its changes
}

// checkModules watches the modules loaded since the last Lookup and
// reloads them all once one changed. Lookup calls it only when there is
// something to do, or when some module is checked by stat.
func (c *Cache) checkModules() {
	for _, m := range c.st.LoadedModules() {
		if c.mods == nil {
			c.mods = make(map[string]*module)
		}
		if _, ok := c.mods[m.File]; ok {
			continue
		}
		e := &module{}
		if c.w != nil {
			if err := c.w.add(m.File); err == nil {
				e.watched = true
			} else {
				c.unwatched(m.File, err)
			}
		}
		if !e.watched {
			c.modStat++
		}
		c.mods[m.File] = e
		// a change between its load and the watch
		if c.statString(m.File) != 0 || m.Stat == "" ||
			luabind.StatID(c.stat.Mtim.Sec, c.stat.Mtim.Nsec, c.stat.Size, c.stat.Ino) != m.Stat {
			c.modChanged = true
		}
		e.mtime, e.size, e.ino = c.stat.Mtim, c.stat.Size, c.stat.Ino
	}
	if !c.modChanged && c.modStat > 0 {
		for file, e := range c.mods {
			if e.watched {
				continue
			}
			if c.statString(file) != 0 || c.stat.Mtim != e.mtime || c.stat.Size != e.size || c.stat.Ino != e.ino {
				c.modChanged = true
				break
			}
		}
	}
	if !c.modChanged {
		return
	}
	c.modChanged = false
	// modules checked by stat are noted afresh when required again
	for file, e := range c.mods {
		if !e.watched {
			delete(c.mods, file)
		}
	}
	c.modStat = 0
	if err := c.st.ReloadModules(); err != nil {
		c.log.Error("reloading changed modules", "err", err)
		return
	}
	c.log.Debug("a module changed: modules reload on their next require")
}

// statString stats file into c.stat without allocating.
func (c *Cache) statString(file string) unix.Errno {
	return c.statPath(unsafe.Slice(unsafe.StringData(file), len(file)))
}

// moduleEvent notes that path, if a module's file, changed.
func (c *Cache) moduleEvent(path string) {
	if c.mods[path] != nil {
		c.modChanged = true
	}
}
