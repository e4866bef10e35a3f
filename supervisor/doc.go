// Package supervisor runs a prefork pool of FastCGI worker processes.
//
// It binds (or inherits) the listen socket, starts the workers with that
// socket as their file descriptor 0 (FCGI_LISTENSOCK_FILENO), restarts the
// ones that die, replaces them all on SIGHUP without dropping a request and
// stops them on SIGTERM, SIGINT or SIGQUIT. It knows nothing about Lua or
// FastCGI records; the workers do the FastCGI work.
//
// The package builds without cgo so that magnetd does too.
package supervisor
