package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parse runs magnetd's flag parsing on args and returns the options.
func parse(t *testing.T, args ...string) (*options, error) {
	t.Helper()
	var o *options
	app := newApp()
	app.Action = func(c *cli.Context) error {
		var err error
		o, err = parseOptions(c)
		return err
	}
	err := app.Run(append([]string{"magnetd"}, args...))
	return o, err
}

// TestContainmentFlags: --request-terminate-timeout maps to the pool's
// RequestTimeout (unset: each worker's own; 0: off), --max-rss reaches the
// workers as MAGNET_MAX_RSS in bytes, and bad values name their flag.
func TestContainmentFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want time.Duration
	}{
		{nil, 0},
		{[]string{"--request-terminate-timeout", "45s"}, 45 * time.Second},
		{[]string{"--request-terminate-timeout", "0"}, -1},
	} {
		o, err := parse(t, append([]string{"-s", "/tmp/x.sock"}, c.args...)...)
		if err != nil {
			t.Fatalf("%q: %v", c.args, err)
		}
		if o.requestTimeout != c.want {
			t.Errorf("%q: request timeout %v, want %v", c.args, o.requestTimeout, c.want)
		}
	}

	o, err := parse(t, "-s", "/tmp/x.sock", "--max-rss", "256M")
	if err != nil {
		t.Fatal(err)
	}
	env := workerEnv([]string{"MAGNET_MAX_RSS=1", "HOME=/root"}, o, false)
	if !slices.Contains(env, "MAGNET_MAX_RSS=268435456") || slices.Contains(env, "MAGNET_MAX_RSS=1") {
		t.Errorf("worker env %q: want MAGNET_MAX_RSS=268435456 only", env)
	}
	o, _ = parse(t, "-s", "/tmp/x.sock")
	if env := workerEnv([]string{"HOME=/root"}, o, false); slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "MAGNET_MAX_RSS=") }) {
		t.Errorf("worker env %q without --max-rss", env)
	}

	for _, args := range [][]string{
		{"--request-terminate-timeout", "-1s"},
		{"--max-rss", "12X"},
	} {
		if _, err := parse(t, append([]string{"-s", "/tmp/x.sock"}, args...)...); err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%q: error %v, want one naming %s", args, err, args[0])
		}
	}
}
