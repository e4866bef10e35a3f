package worker

import (
	"fmt"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/sqlbind"
)

// registerSQL installs luasql, LuaSQL's API on database/sql (package
// sqlbind), confined like the rest under --sandbox. It costs a script
// nothing until it connects.
func registerSQL(st *luabind.State, sb *luabind.Sandbox) error {
	if err := sqlbind.Register(st, sb); err != nil {
		return fmt.Errorf("luasql: %w", err)
	}
	return nil
}
