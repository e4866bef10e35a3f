package luabind

import (
	"io/fs"
	"os"
)

// registerLibs installs the Go-backed batteries.
func registerLibs(st *State) {
	st.Register("magnet.fs", "stat", fsStat)
	st.Register("magnet.fs", "readdir", fsReadDir)
	st.Register("magnet.fs", "readfile", fsReadFile)
	st.Register("magnet.fs", "writefile", fsWriteFile)
	registerBatteries(st)
}

// fsStat: magnet.fs.stat(path) -> {type, size, mtime, mode} | nil, err
func fsStat(c *Call) (int, error) {
	path, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return c.Fail(err)
	}
	c.NewTable(0, 4)
	c.PushString(fileType(fi.Mode()))
	c.SetField(-2, "type")
	c.PushNumber(float64(fi.Size()))
	c.SetField(-2, "size")
	c.PushNumber(float64(fi.ModTime().Unix()))
	c.SetField(-2, "mtime")
	c.PushNumber(float64(fi.Mode().Perm()))
	c.SetField(-2, "mode")
	return 1, nil
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "link"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "other"
}

// fsReadDir: magnet.fs.readdir(path) -> {names...} (sorted) | nil, err
func fsReadDir(c *Call) (int, error) {
	path, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return c.Fail(err)
	}
	c.NewTable(len(ents), 0)
	for i, e := range ents {
		c.PushString(e.Name())
		c.SetIndex(-2, i+1)
	}
	return 1, nil
}

// fsReadFile: magnet.fs.readfile(path) -> contents | nil, err
func fsReadFile(c *Call) (int, error) {
	path, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return c.Fail(err)
	}
	c.PushString(string(b))
	return 1, nil
}

// fsWriteFile: magnet.fs.writefile(path, data) -> true | nil, err
func fsWriteFile(c *Call) (int, error) {
	path, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	data, err := c.CheckString(2)
	if err != nil {
		return 0, err
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		return c.Fail(err)
	}
	c.PushBool(true)
	return 1, nil
}
