// Package protocol implements the FastCGI 1.0 wire protocol: the record
// codec, the name-value pair encoding, a server-side connection decoder
// that does not allocate per request, and a client for tests, benchmarks
// and HTTP fronts.
//
// The package knows FastCGI bytes only. It does not read or write sockets
// on the server side: the caller owns the connection, feeds received bytes
// to a Conn and writes back the records the Conn and the Append helpers
// produce.
package protocol
