// Package daemon is magnetd's Unix housekeeping around the worker pool:
// detaching into the background (Go cannot fork, so the program starts
// itself again), pid files, log files that reopen on SIGUSR1, and the user
// and group the workers run as. It knows nothing about workers or Lua.
package daemon
