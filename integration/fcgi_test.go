package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/magnet-fcgi/magnet/protocol"
)

// requestTimeout bounds one FastCGI request made by a test.
const requestTimeout = 30 * time.Second

// fcgiResult is a FastCGI response with its CGI output parsed.
type fcgiResult struct {
	status int
	header http.Header
	body   string
	stderr string
}

// fcgiGet runs script (an absolute SCRIPT_FILENAME) as a GET request over
// c, with the query string and extra params given.
func fcgiGet(c *protocol.Client, script, query string, extra ...protocol.Pair) (fcgiResult, error) {
	return fcgiDo(c, &protocol.Request{KeepConn: true, Params: append(getParams(script, query), extra...)})
}

// getParams returns the params of a GET request for script, as a web
// server would send them.
func getParams(script, query string) []protocol.Pair {
	uri := "/" + filepath.Base(script)
	if query != "" {
		uri += "?" + query
	}
	return []protocol.Pair{
		{Name: "SCRIPT_FILENAME", Value: script},
		{Name: "SCRIPT_NAME", Value: "/" + filepath.Base(script)},
		{Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "REQUEST_URI", Value: uri},
		{Name: "QUERY_STRING", Value: query},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		{Name: "REMOTE_ADDR", Value: "127.0.0.1"},
	}
}

// fcgiDo sends req over c and parses the CGI response.
func fcgiDo(c *protocol.Client, req *protocol.Request) (fcgiResult, error) {
	if err := c.SetDeadline(time.Now().Add(requestTimeout)); err != nil {
		return fcgiResult{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fcgiResult{}, fmt.Errorf("fastcgi request: %w", err)
	}
	if resp.ProtocolStatus != 0 {
		return fcgiResult{}, fmt.Errorf("fastcgi request: protocol status %d, app status %d", resp.ProtocolStatus, resp.AppStatus)
	}
	status, header, body, err := protocol.ParseCGI(resp.Stdout)
	if err != nil {
		return fcgiResult{}, fmt.Errorf("fastcgi response %q: %w", resp.Stdout, err)
	}
	return fcgiResult{status: status, header: http.Header(header), body: string(body), stderr: string(resp.Stderr)}, nil
}

// fcgiOnce dials network/address, runs one request without FCGI_KEEP_CONN
// and closes the connection.
func fcgiOnce(network, address, script, query string) (fcgiResult, error) {
	c, err := protocol.Dial(network, address)
	if err != nil {
		return fcgiResult{}, err
	}
	defer c.Close()
	return fcgiDo(c, &protocol.Request{Params: getParams(script, query)})
}

// check123FCGI checks the seed's 123.lua answer over FastCGI.
func check123FCGI(r fcgiResult, err error) error {
	if err != nil {
		return err
	}
	if r.status != 200 || r.body != "123" || r.header.Get("Content-Length") != "3" {
		return fmt.Errorf("123.lua: status %d, Content-Length %q, body %q; want 200, \"3\", \"123\"",
			r.status, r.header.Get("Content-Length"), r.body)
	}
	return nil
}

// dialFCGI opens a FastCGI connection to a unix socket.
func dialFCGI(socket string) (*protocol.Client, error) {
	return protocol.Dial("unix", socket)
}
