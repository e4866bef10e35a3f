// Package deploy holds magnetd's deployment examples — lighttpd (bin-path
// and external socket), nginx, a systemd unit, a SysV/LSB init script and a
// logrotate snippet — and the tests that run each of them against real
// servers and real processes. It has no Go API.
package deploy
