package luabind

import (
	"context"
	"log/slog"
	"strings"
)

// LogFunc receives the lines scripts log with magnet.log. The worker
// adds the script, URI and pid, and sends warnings and errors to the web
// server too; luabind knows none of that.
type LogFunc func(level slog.Level, msg string)

// SetLogger routes magnet.log to fn (nil: slog's default logger). Call it
// while no script runs.
func (st *State) SetLogger(fn LogFunc) {
	if fn == nil {
		fn = func(level slog.Level, msg string) { slog.Log(context.Background(), level, msg) }
	}
	st.Register("magnet", "log", func(c *Call) (int, error) { return luaLog(c, fn) })
}

// luaLog: magnet.log(level, ...) with level "debug", "info", "warn" or
// "error"; the other arguments are joined as by print, without the tabs.
func luaLog(c *Call, fn LogFunc) (int, error) {
	name, err := c.CheckString(1)
	if err != nil {
		return 0, err
	}
	var level slog.Level
	switch name {
	case "debug":
		level = slog.LevelDebug
	case "info":
		level = slog.LevelInfo
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		return 0, c.ArgError(1, `"debug", "info", "warn" or "error" expected`)
	}
	var b strings.Builder
	for i := 2; i <= c.Top(); i++ {
		switch c.ArgType(i) {
		case TypeString, TypeNumber:
			s, _ := c.CheckString(i)
			b.WriteString(s)
		case TypeBoolean:
			if c.Bool(i) {
				b.WriteString("true")
			} else {
				b.WriteString("false")
			}
		default:
			b.WriteString(c.TypeName(i))
		}
	}
	fn(level, b.String())
	return 0, nil
}
