/* A FastCGI responder built on libfcgi, for interoperability tests: it
 * answers with a CGI header block, the SCRIPT_FILENAME param, and the
 * request body echoed back; it writes one line to STDERR. */
#include <fcgiapp.h>

int main(void)
{
	FCGX_Request req;
	char buf[4096];
	int n;

	FCGX_Init();
	FCGX_InitRequest(&req, 0, 0);
	while (FCGX_Accept_r(&req) >= 0) {
		const char *script = FCGX_GetParam("SCRIPT_FILENAME", req.envp);
		FCGX_FPrintF(req.out, "Status: 201 Created\r\nContent-Type: text/plain\r\n\r\nscript=%s\n",
			script ? script : "");
		while ((n = FCGX_GetStr(buf, sizeof buf, req.in)) > 0)
			FCGX_PutStr(buf, n, req.out);
		FCGX_PutS("libfcgi stderr\n", req.err);
		FCGX_Finish_r(&req);
	}
	return 0;
}
