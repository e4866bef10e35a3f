package protocol_test

import (
	"fmt"
	"net"

	"github.com/magnet-fcgi/magnet/protocol"
)

// serve is the shape of a worker's loop: read into the Conn, drain its
// events, answer each request with one write.
func serve(nc net.Conn) error {
	defer nc.Close()
	c := protocol.NewConn(protocol.Limits{})
	var out []byte
	for {
		for {
			ev, err := c.Next()
			if err != nil {
				return err // malformed stream: close the connection
			}
			if ev.Kind == protocol.EventNone {
				break
			}
			switch ev.Kind {
			case protocol.EventRequest:
				// Params are valid until FinishRequest. This handler answers
				// at once; a handler that reads the body waits for
				// EventStdin and EventStdinEnd first.
				script, _ := c.Params().Lookup("SCRIPT_FILENAME")
				body := "Content-Type: text/plain\r\n\r\nrunning " + string(script)
				out = protocol.AppendResponse(out[:0], ev.RequestID, []byte(body), nil, 0)
				keep := c.KeepConn()
				c.FinishRequest() // the rest of STDIN is skipped
				if _, err := nc.Write(out); err != nil || !keep {
					return err
				}
			case protocol.EventAbort:
				out = protocol.AppendEndRequest(out[:0], ev.RequestID, 0, protocol.StatusRequestComplete)
				keep := c.KeepConn()
				c.FinishRequest()
				if _, err := nc.Write(out); err != nil || !keep {
					return err
				}
			case protocol.EventReply:
				if _, err := nc.Write(ev.Data); err != nil || ev.Close {
					return err
				}
			}
		}
		n, err := nc.Read(c.ReadBuffer())
		c.Advance(n)
		if err != nil {
			return err
		}
	}
}

func Example() {
	clientSide, serverSide := net.Pipe()
	go serve(serverSide)

	c := protocol.NewClient(clientSide)
	defer c.Close()
	resp, err := c.Do(&protocol.Request{
		KeepConn: true,
		Params:   []protocol.Pair{{Name: "SCRIPT_FILENAME", Value: "/srv/hello.lua"}},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	status, header, body, err := protocol.ParseCGI(resp.Stdout)
	fmt.Println(status, header.Get("Content-Type"), string(body), err)
	// Output: 200 text/plain running /srv/hello.lua <nil>
}
