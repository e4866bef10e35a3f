/* numfmt.c: PUC Lua's number-to-string conversion, made cheap for
 * integers. Safety rules: doc.go (nothing here touches Lua).
 *
 * Lua 5.1 turns every number into a string (a concatenation, tostring,
 * print) with sprintf("%.14g"), which Debian's build of liblua5.1 calls
 * as glibc's fortified __sprintf_chk. For an integer that goes through
 * glibc's multi-precision float printer, which costs more than the rest
 * of a short concatenation: a page printing ten ids from a database pays
 * it ten times. The worker's executable defines __sprintf_chk, which the
 * dynamic linker binds liblua's calls to (an executable's definitions come
 * first). It writes an integral double below 10^14 in the format's "%.14g"
 * with its own digits, which are exactly what glibc would write there (no
 * exponent, no fraction), and passes every other call, whatever its
 * format, to glibc's __vsprintf_chk unchanged.
 *
 * LuaJIT formats numbers itself, and other C libraries do not call this
 * unless they were built fortified too: they then get glibc's output. */
#include "magnet.h"

/* mg_numfmt_fast counts the numbers written here, for the test that
 * checks the definition is the one liblua calls. */
unsigned long mg_numfmt_fast;

#if defined(__GLIBC__) && !defined(LUA_JITLIBNAME)
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

int __vsprintf_chk(char *s, int flag, size_t slen, const char *format, va_list ap);
int __sprintf_chk(char *s, int flag, size_t slen, const char *format, ...);

/* fmt_integer writes x, integral with |x| < 10^14, as %.14g does, into s
 * of slen bytes; -1 if it does not fit. */
static int fmt_integer(char *s, size_t slen, double x) {
	char d[24];
	int n = 0;
	int neg = x < 0;
	uint64_t v = (uint64_t)(neg ? -x : x);
	do {
		d[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	size_t len = (size_t)n + (size_t)neg;
	if (len + 1 > slen) return -1;
	char *p = s;
	if (neg) *p++ = '-';
	while (n) *p++ = d[--n];
	*p = 0;
	return (int)len;
}

int __sprintf_chk(char *s, int flag, size_t slen, const char *format, ...) {
	va_list ap;
	va_start(ap, format);
	if (strcmp(format, "%.14g") == 0) {
		va_list aq;
		va_copy(aq, ap);
		double x = va_arg(aq, double);
		va_end(aq);
		/* -0 is "-0"; NaN fails the first test */
		if (fabs(x) < 1e14 && x == (double)(int64_t)x && !(x == 0 && signbit(x))) {
			int n = fmt_integer(s, slen, x);
			if (n >= 0) {
				va_end(ap);
				mg_numfmt_fast++;
				return n;
			}
		}
	}
	int n = __vsprintf_chk(s, flag, slen, format, ap);
	va_end(ap);
	return n;
}
#endif
