package worker

import (
	"fmt"

	"github.com/magnet-fcgi/magnet/luabind"
	"github.com/magnet-fcgi/magnet/redisbind"
)

// registerRedis installs magnet.redis (package redisbind). It costs a
// script nothing until it connects.
func registerRedis(st *luabind.State) error {
	if err := redisbind.Register(st); err != nil {
		return fmt.Errorf("magnet.redis: %w", err)
	}
	return nil
}
