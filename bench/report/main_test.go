package main

import (
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"server":"c-ref","mode":"keep","run":1,"rss_kib":2048,"server_ticks":150,"hz":100,"res":{"rps":100,"p50_us":10,"p99_us":20,"max_us":40,"answered":125000}}`,
		`{"server":"magnet","mode":"keep","run":1,"rss_kib":8192,"res":{"rps":150,"p50_us":8,"p99_us":15,"max_us":30,"loadgen_cpu":0.97}}`,
		`{"server":"c-ref","mode":"keep","run":2,"rss_kib":2048,"res":{"rps":200,"p50_us":10,"p99_us":20,"max_us":40}}`,
		`{"server":"magnet","mode":"keep","run":2,"rss_kib":8192,"res":{"rps":220,"p50_us":8,"p99_us":15,"max_us":30}}`,
		`{"server":"c-ref","mode":"keep","run":3,"rss_kib":2048,"res":{"rps":150,"p50_us":10,"p99_us":20,"max_us":40,"starved":6}}`,
		`{"server":"magnet","mode":"keep","run":3,"rss_kib":8192,"res":{"rps":180,"p50_us":8,"p99_us":15,"max_us":30,"failures":2,"loadgen_cpu":0.95}}`,
		`{"server":"magnet","mode":"keep","syscalls":3.25}`,
		`{"server":"magnet","mode":"keep","syscalls_perf":2.04}`,
		`{"server":"php-fpm","mode":"keep","na":"php-fpm8.2 not installed"}`,
		``,
	}, "\n")
	var out strings.Builder
	if err := report(strings.NewReader(in), &out, "c-ref"); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 6 {
		t.Fatalf("want header, 3 rows and 2 notes, got:\n%s", got)
	}
	for i, want := range [][]string{
		{"mode", "server", "req/s", "x C-ref", "server CPU us/req", "syscalls/req"},
		// Server CPU: 1.5 s over 125,000 requests is 12.0 us each.
		{"keep", "c-ref", "150", "1.00", "12.0", "2.0", "6"},
		// Ratios per run: 1.5, 1.1, 1.2: the median is 1.20; req/s median 180.
		{"keep", "magnet", "180*", "1.20", "1.10-1.50", "3.2", "2.0", "8.0", "2"},
		{"keep", "php-fpm", "n/a"},
		{"*: the load generator used 90% or more"},
		{"n/a: php-fpm: php-fpm8.2 not installed"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
}

func TestReportRejectsGarbage(t *testing.T) {
	if err := report(strings.NewReader("not json\n"), new(strings.Builder), "c-ref"); err == nil {
		t.Error("want an error for a line that is not JSON")
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{{[]float64{3, 1, 2}, 2}, {[]float64{4, 1, 3, 2}, 2.5}, {[]float64{7}, 7}} {
		if got := median(c.in); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}
