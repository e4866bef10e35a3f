// Package accesslog writes one Combined Log Format line per HTTP request,
// as web servers do, for magnetd's development HTTP front and status
// listener.
package accesslog
