/*
 * floor.c: the no-Lua floor for magnet's benchmark.
 *
 * A libfcgi FCGI_Accept() loop that answers every request with the
 * same response 123.lua produces, without running any script: the
 * cost of libfcgi and the kernel alone.
 *
 * Build: cc -O2 floor.c -lfcgi
 */
#include <fcgi_stdio.h>

#include <signal.h>

static const char response[] =
	"Content-Type: text/html\r\nStatus: 200\r\nContent-Length: 3\r\n\r\n123";

int main(void) {
	signal(SIGPIPE, SIG_IGN);
	while (FCGI_Accept() >= 0)
		FCGI_fwrite((void *)response, 1, sizeof response - 1, FCGI_stdout);
	return 0;
}
