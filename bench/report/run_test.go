package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// TestBenchRun runs bench/run for real, briefly, on the C programs only:
// it builds them, starts them with spawn-fcgi, drives them with loadgen,
// counts syscalls with strace and prints the table.
func TestBenchRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers; skipped with -short")
	}
	for _, p := range [][2]string{{"spawn-fcgi", "spawn-fcgi"}, {"gcc", "gcc"}, {"pkg-config", "pkg-config"}, {"taskset", "util-linux"}, {"go", "golang-go"}} {
		testutil.LookPath(t, p[0], p[1])
	}
	testutil.NeedFile(t, "/usr/include/fcgi_stdio.h", "libfcgi-dev")
	cmd := exec.Command("../run")
	cmd.Env = append(os.Environ(), "BENCH_RUNS=1", "BENCH_DURATION=500ms", "BENCH_WARMUP=200ms",
		"BENCH_STRACE_REQUESTS=300", "BENCH_SERVERS=c-ref floor", "BENCH_MODES=keep2 keep8",
		"BENCH_NO_INSTALL=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench/run: %v\n%s\n%s", err, out, stderr.String())
	}
	table := string(out)
	for _, want := range []string{"machine: ", "direct keep-conn c=2  c-ref", "direct keep-conn c=8  floor"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, l := range strings.Split(table, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || f[0] != "direct" {
			continue
		}
		if f[len(f)-2] != "0" {
			t.Errorf("failures in %q", l)
		}
		if f[3] == "c-ref" && f[5] != "1.00" {
			t.Errorf("the C reference's ratio is not 1.00: %q", l)
		}
		// 2 processes hold 2 of the 8 keep-alive connections: the
		// others starve (6, unless a slow machine let a connection send
		// its first request only after the warm-up).
		if n, _ := strconv.Atoi(f[len(f)-1]); f[2] == "c=8" && (n < 1 || n > 6) {
			t.Errorf("want up to 6 starved requests: %q", l)
		}
	}
	// The charts are written next to the table, in the directory the
	// last line of the progress names.
	_, dir, ok := strings.Cut(stderr.String(), "results and charts (*.svg) in ")
	if !ok {
		t.Fatalf("bench/run does not say where its charts are:\n%s", stderr.String())
	}
	dir = filepath.Join("../..", strings.TrimSpace(strings.SplitN(dir, "\n", 2)[0]))
	for name, server := range map[string]string{"rps.svg": "floor", "ratio.svg": "floor", "latency-direct-keep-conn-c-8.svg": "c-ref"} {
		if texts := svgTexts(t, filepath.Join(dir, name)); !slices.Contains(texts, server) {
			t.Errorf("%s does not name %s: %q", name, server, texts)
		}
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", stderr.String())
	}
}

// TestBenchScale runs bench/scale for real, briefly: the static build,
// then 1 worker of the C reference and of magnet with busy polling.
func TestBenchScale(t *testing.T) {
	if testing.Short() {
		t.Skip("builds static binaries and starts servers; skipped with -short")
	}
	for _, p := range [][2]string{{"gcc", "gcc"}, {"pkg-config", "pkg-config"}, {"go", "golang-go"}} {
		testutil.LookPath(t, p[0], p[1])
	}
	for _, p := range [][2]string{
		{"/usr/include/fcgi_stdio.h", "libfcgi-dev"},
		{"/usr/lib/x86_64-linux-gnu/liblua5.1.a", "liblua5.1-0-dev"},
		{"/usr/lib/x86_64-linux-gnu/libluajit-5.1.a", "libluajit-5.1-dev"},
	} {
		testutil.NeedFile(t, p[0], p[1])
	}
	if out, err := exec.Command("../scale", "build").CombinedOutput(); err != nil {
		t.Fatalf("bench/scale build: %v\n%s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command("../scale", "run", dir)
	cmd.Env = append(os.Environ(), "SCALE_WORKERS=1", "SCALE_RUNS=1", "SCALE_DURATION=300ms",
		"SCALE_WARMUP=100ms", "SCALE_SERVERS=c-ref magnet-bp")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bench/scale run: %v\n%s\n%s", err, out, stderr.String())
	}
	table := string(out)
	for _, server := range []string{"c-ref", "magnet-bp"} {
		found := false
		for _, l := range strings.Split(table, "\n") {
			f := strings.Fields(l)
			if len(f) > 6 && f[3] == server {
				found = true
				if rps, _ := strconv.ParseFloat(strings.TrimSuffix(f[4], "*"), 64); rps <= 0 || f[len(f)-2] != "0" {
					t.Errorf("no requests or failures: %q", l)
				}
			}
		}
		if !found {
			t.Errorf("table lacks %s:\n%s\n%s", server, table, stderr.String())
		}
	}
	for _, name := range []string{"scaling.svg", "scaling-ratio.svg", "latency-keep-conn-1-workers.svg"} {
		if texts := svgTexts(t, filepath.Join(dir, name)); !slices.Contains(texts, "magnet-bp") && !slices.Contains(texts, "magnet-") {
			t.Errorf("%s does not name magnet-bp: %q", name, texts)
		}
	}
}
