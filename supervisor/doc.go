// Package supervisor is magnetd's process pool: it starts the FastCGI
// worker processes with the listen socket as their file descriptor 0
// (FCGI_LISTENSOCK_FILENO), restarts the ones that die, replaces them all
// on SIGHUP without dropping a request and stops them on SIGTERM, SIGINT or
// SIGQUIT. It knows nothing about Lua or FastCGI records; the workers do
// the FastCGI work. Processes, signals and the clock are reached through
// the OS interface, so that the pool's logic is tested without them. Binding sockets, the scoreboard and daemonizing live
// under internal/, shared with or apart from the pool.
//
// The package builds without cgo so that magnetd does too.
package supervisor
