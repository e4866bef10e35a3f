package main

import "testing"

// TestRequestParamsQuery checks that -query reaches the script as
// QUERY_STRING and in REQUEST_URI, as a web server sends them.
func TestRequestParamsQuery(t *testing.T) {
	for _, tc := range []struct{ query, uri string }{
		{"", "/page.lua"},
		{"g=42", "/page.lua?g=42"},
	} {
		got := map[string]string{}
		for _, p := range requestParams("/srv/page.lua", tc.query) {
			got[p.Name] = p.Value
		}
		if got["QUERY_STRING"] != tc.query || got["REQUEST_URI"] != tc.uri || got["SCRIPT_NAME"] != "/page.lua" {
			t.Errorf("query %q: QUERY_STRING %q, REQUEST_URI %q, SCRIPT_NAME %q", tc.query,
				got["QUERY_STRING"], got["REQUEST_URI"], got["SCRIPT_NAME"])
		}
	}
}
