package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"
)

// confinement is what magnetd's confinement flags give the workers.
type confinement struct {
	refuseRoot bool
	clearEnv   bool
	// env is --env, each NAME=VALUE (a bare NAME took magnetd's value).
	env []string
	// settings are the MAGNET_* variables that carry the magnet-worker
	// flags (--sandbox and the like) to the workers.
	settings []string
}

// parseConfinement checks the confinement flags. Run as root, it refuses
// workers without -u under --refuse-root (runPool warns about them
// otherwise).
func (o *options) parseConfinement(c *cli.Context) error {
	o.refuseRoot = c.Bool("refuse-root")
	o.clearEnv = c.Bool("clear-env")
	for _, e := range c.StringSlice("env") {
		name, value, ok := strings.Cut(e, "=")
		if name == "" || strings.ContainsAny(name, " \t\x00") {
			return fmt.Errorf("--env %q: want NAME or NAME=VALUE", e)
		}
		if !ok {
			value = os.Getenv(name)
		}
		o.env = append(o.env, name+"="+value)
	}
	if os.Geteuid() == 0 && o.user == "" && o.refuseRoot {
		return errors.New("--refuse-root: the workers would run as root; give -u USER")
	}
	if o.refuseRoot {
		o.settings = append(o.settings, "MAGNET_REFUSE_ROOT=true")
	}
	if list := c.String("allowed-clients"); list != "" {
		if err := checkClients(list); err != nil {
			return fmt.Errorf("--allowed-clients: %w", err)
		}
		if o.socketPath != "" {
			o.warnings = append(o.warnings, "--allowed-clients is ignored with -s/--socket")
		}
		o.settings = append(o.settings, "MAGNET_ALLOWED_CLIENTS="+list)
	}
	if c.Bool("any-script") {
		o.settings = append(o.settings, "MAGNET_ANY_SCRIPT=true")
	}
	dirs, mods := c.StringSlice("open-basedir"), c.StringSlice("allow-module")
	if !c.Bool("sandbox") {
		if len(dirs) > 0 || len(mods) > 0 {
			return errors.New("--open-basedir and --allow-module need --sandbox")
		}
		return nil
	}
	o.settings = append(o.settings, "MAGNET_SANDBOX=true")
	for i, d := range dirs {
		abs, err := filepath.Abs(d)
		if err != nil {
			return fmt.Errorf("--open-basedir: %w", err)
		}
		if strings.Contains(abs, ",") {
			return fmt.Errorf("--open-basedir %s: a comma cannot reach the workers", d)
		}
		dirs[i] = abs
	}
	if len(dirs) > 0 {
		o.settings = append(o.settings, "MAGNET_OPEN_BASEDIR="+strings.Join(dirs, ","))
	}
	if len(mods) > 0 {
		o.settings = append(o.settings, "MAGNET_ALLOW_MODULE="+strings.Join(mods, ","))
	}
	return nil
}

const rootWarning = "RUNNING THE WORKERS AS ROOT: every script can read and change anything on this machine; give -u USER, or --refuse-root to make this an error"

// checkClients checks an allow-list as magnet-worker reads it: addresses
// or CIDR prefixes separated by commas or spaces.
func checkClients(list string) error {
	fields := strings.FieldsFunc(list, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
	if len(fields) == 0 {
		return fmt.Errorf("%q: no address", list)
	}
	for _, f := range fields {
		var err error
		if strings.Contains(f, "/") {
			_, err = netip.ParsePrefix(f)
		} else {
			_, err = netip.ParseAddr(f)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// keptEnv reports whether --clear-env keeps a variable of magnetd's
// environment: PATH (for -f's /bin/sh and the scripts' os.execute), TZ
// (os.date and log times), LUA_PATH and LUA_CPATH (where require looks),
// FCGI_WEB_SERVER_ADDRS (the allowed clients), the MAGNET_* settings of
// magnet-worker and the PHP_FCGI_* settings of FastCGI programs.
func keptEnv(name string) bool {
	switch name {
	case "PATH", "TZ", "LUA_PATH", "LUA_CPATH", "FCGI_WEB_SERVER_ADDRS":
		return true
	}
	return strings.HasPrefix(name, "MAGNET_") || strings.HasPrefix(name, "PHP_FCGI_")
}
