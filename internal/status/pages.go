package status

// Pong is the answer to a ping request, as PHP-FPM's default ping.response.
const Pong = "pong"

// NoCacheHeaders are the headers PHP-FPM sends with status and ping
// answers, so that no proxy keeps them.
var NoCacheHeaders = [][2]string{
	{"Expires", "Thu, 01 Jan 1970 00:00:00 GMT"},
	{"Cache-Control", "no-cache, no-store, must-revalidate, max-age=0"},
}
