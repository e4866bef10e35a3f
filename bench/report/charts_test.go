package main

import (
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// runFixture: two modes, three runs of magnet and the C reference, and a
// server that is not installed.
var runFixture = strings.Join([]string{
	`{"server":"magnet","mode":"direct keep-conn c=2","run":1,"server_ticks":120,"hz":100,"res":{"rps":150,"p50_us":8,"p99_us":15,"max_us":3000,"answered":100000}}`,
	`{"server":"c-ref","mode":"direct keep-conn c=2","run":1,"server_ticks":150,"hz":100,"res":{"rps":100,"p50_us":10,"p99_us":20,"max_us":40,"answered":100000}}`,
	`{"server":"php-fpm","mode":"direct keep-conn c=2","na":"php-fpm8.2 not installed"}`,
	`{"server":"magnet","mode":"nginx keep_conn, wrk -c 8","run":1,"res":{"rps":90,"p50_us":80,"p99_us":150,"max_us":300}}`,
	`{"server":"c-ref","mode":"nginx keep_conn, wrk -c 8","run":1,"res":{"rps":80,"p50_us":90,"p99_us":250000,"max_us":4000000}}`,
	`{"server":"php-fpm","mode":"nginx keep_conn, wrk -c 8","na":"php-fpm8.2 not installed"}`,
	`{"server":"magnet","mode":"direct keep-conn c=2","run":2,"res":{"rps":220,"p50_us":8,"p99_us":15,"max_us":30}}`,
	`{"server":"c-ref","mode":"direct keep-conn c=2","run":2,"res":{"rps":200,"p50_us":10,"p99_us":20,"max_us":40}}`,
	`{"server":"magnet","mode":"nginx keep_conn, wrk -c 8","run":2,"res":{"rps":95,"p50_us":80,"p99_us":150,"max_us":300}}`,
	`{"server":"c-ref","mode":"nginx keep_conn, wrk -c 8","run":2,"res":{"rps":70,"p50_us":90,"p99_us":250000,"max_us":4000000}}`,
	`{"server":"magnet","mode":"direct keep-conn c=2","syscalls":3.25}`,
}, "\n")

func TestCharts(t *testing.T) {
	dir := t.TempDir()
	if err := charts(strings.NewReader(runFixture), dir, "c-ref"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"rps.svg":                             {"Requests per second (median of 2 runs)", "magnet", "c-ref", "direct keep-conn", "c=2", "nginx keep_conn,", "wrk -c 8", "requests per second"},
		"ratio.svg":                           {"magnet", "c-ref = 1", "1×"},
		"cpu.svg":                             {"Server CPU time per request, user + system (lower is better; median of 2 runs)", "magnet", "c-ref", "direct keep-conn", "server CPU µs per request"},
		"latency-direct-keep-conn-c-2.svg":    {"p50", "p99", "max", "magnet", "c-ref", "10 µs"},
		"latency-nginx-keep-conn-wrk-c-8.svg": {"p50", "p99", "max", "magnet", "c-ref", "1 s"},
	} {
		texts := svgTexts(t, filepath.Join(dir, name))
		for _, w := range want {
			if !slices.Contains(texts, w) {
				t.Errorf("%s lacks the text %q; it has %q", name, w, texts)
			}
		}
		// A server with no numbers has no bar and no legend entry.
		if slices.Contains(texts, "php-fpm") {
			t.Errorf("%s names php-fpm, which has no numbers", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "scaling.svg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scaling.svg for modes without worker counts: %v", err)
	}
}

func TestChartsScaling(t *testing.T) {
	var lines []string
	for _, n := range []string{"1", "2", "4"} {
		lines = append(lines,
			`{"server":"c-ref","mode":"keep-conn, `+n+` workers","run":1,"res":{"rps":`+n+`0000,"p50_us":17,"p99_us":30,"max_us":400}}`,
			`{"server":"magnet-luajit-bp","mode":"keep-conn, `+n+` workers","run":1,"res":{"rps":`+n+`5000,"p50_us":14,"p99_us":25,"max_us":300}}`)
	}
	dir := t.TempDir()
	if err := charts(strings.NewReader(strings.Join(lines, "\n")), dir, "c-ref"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][]string{
		"scaling.svg":                     {"c-ref", "magnet-luajit-bp", "1", "2", "4", "workers (one keep-alive connection each)", "40k"},
		"scaling-ratio.svg":               {"magnet-luajit-bp", "c-ref = 1"},
		"latency-keep-conn-4-workers.svg": {"p50", "p99", "max", "c-ref", "magnet-", "luajit-bp"},
	} {
		texts := svgTexts(t, filepath.Join(dir, name))
		for _, w := range want {
			if !slices.Contains(texts, w) {
				t.Errorf("%s lacks the text %q; it has %q", name, w, texts)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "rps.svg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rps.svg beside the scaling charts: %v", err)
	}
}

func TestChartsRejectsEmpty(t *testing.T) {
	if err := charts(strings.NewReader(""), t.TempDir(), "c-ref"); err == nil {
		t.Error("want an error for no measurements")
	}
}

// svgTexts parses an SVG file as XML, failing the test unless it is
// well-formed with an <svg> root, and returns the content of its <text>
// elements, one line of each.
func svgTexts(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := xml.NewDecoder(f)
	var texts []string
	var root string
	inText := false
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s is not well-formed XML: %v", path, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
		case xml.EndElement:
			inText = false
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		}
	}
	if root != "svg" {
		t.Fatalf("%s: root element %q, want svg", path, root)
	}
	return texts
}

func TestGroupLabels(t *testing.T) {
	got := groupLabels([]string{"direct keep-conn c=2", "nginx keep_conn, wrk -c 8", "magnet-luajit-si", "c-ref"}, 16)
	want := []string{"direct keep-conn\nc=2", "nginx keep_conn,\nwrk -c 8", "magnet-luajit-si", "c-ref"}
	if !slices.Equal(got, want) {
		t.Errorf("groupLabels = %q, want %q", got, want)
	}
	if got := groupLabels([]string{"magnet-luajit-si"}, 10)[0]; got != "magnet-\nluajit-si" {
		t.Errorf("groupLabels(magnet-luajit-si, 10) = %q", got)
	}
	if got := slug("nginx keep_conn, wrk -c 8"); got != "nginx-keep-conn-wrk-c-8" {
		t.Errorf("slug = %q", got)
	}
}
