package worker

import (
	"fmt"

	"github.com/magnet-fcgi/magnet/luabind"
)

// setModules gives require the document roots after cfg.Modules' own
// paths. It runs after the sandbox, whose module loader it wraps.
func setModules(st *luabind.State, cfg Config) error {
	m := cfg.Modules
	m.Roots = append(m.Roots[:len(m.Roots):len(m.Roots)], cfg.Scripts.DocRoots...)
	if err := st.SetModules(m); err != nil {
		return fmt.Errorf("modules: %w", err)
	}
	return nil
}
