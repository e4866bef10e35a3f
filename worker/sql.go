package worker

import (
	"fmt"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/sqlbind"
)

// registerSQL installs luasql, LuaSQL's API on database/sql (package
// sqlbind). It costs a script nothing until it connects.
func registerSQL(st *luabind.State) error {
	if err := sqlbind.Register(st); err != nil {
		return fmt.Errorf("luasql: %w", err)
	}
	return nil
}
