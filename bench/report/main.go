// Command report prints the table of a bench/run: it reads the JSON lines
// that bench/run writes (one per measurement, one per syscall count) on
// standard input and prints, for each mode and server, the medians over
// the runs.
//
// The ratio column is the median over runs of the server's req/s divided
// by the C reference's req/s measured in the same run and mode; the range
// column shows the lowest and highest of those ratios.
//
// With -svg DIR it writes SVG charts of the same lines into DIR instead:
// see charts.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// line is one JSON line of bench/run's results file.
type line struct {
	Server   string   `json:"server"`
	Mode     string   `json:"mode"`
	Run      int      `json:"run"`
	RSSKiB   float64  `json:"rss_kib"`       // mean VmRSS per worker after the run
	CPUTicks *float64 `json:"server_ticks"`  // the servers' CPU time over the run, in clock ticks
	Hz       float64  `json:"hz"`            // clock ticks per second
	Syscalls *float64 `json:"syscalls"`      // per request, from a strace line
	Perf     *float64 `json:"syscalls_perf"` // per request, from a perf line
	NA       string   `json:"na"`            // why the server has no numbers
	Res      *struct {
		RPS      float64 `json:"rps"`
		P50      float64 `json:"p50_us"`
		P99      float64 `json:"p99_us"`
		Max      float64 `json:"max_us"`
		Failures uint64  `json:"failures"`
		Starved  uint64  `json:"starved"`
		CPU      float64 `json:"loadgen_cpu"`
		Answered float64 `json:"answered"` // warm-up included
	} `json:"res"`
}

// cell gathers the measurements of one server in one mode.
type cell struct {
	rps, p50, p99, max, rss, ratio []float64
	loadCPU                        []float64
	serverUS                       []float64 // server CPU microseconds per request
	syscalls, perf                 []float64
	failures, starved              uint64
	na                             string
}

func main() {
	ref := flag.String("ref", "c-ref", "`server` the ratio column divides by")
	svg := flag.String("svg", "", "write SVG charts into `dir` instead of printing the table")
	flag.Parse()
	var err error
	if *svg != "" {
		err = charts(os.Stdin, *svg, *ref)
	} else {
		err = report(os.Stdin, os.Stdout, *ref)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
}

// results holds the parsed JSON lines: the modes and servers in the order
// they first appear, and a cell for each pair that has a line.
type results struct {
	modes, servers []string
	cells          map[[2]string]*cell
	runs           int // the highest run number
}

func (rs *results) cell(server, mode string) *cell { return rs.cells[[2]string{server, mode}] }

// parse reads bench/run's JSON lines and computes each cell's ratios to
// the ref server measured in the same run and mode.
func parse(r io.Reader, ref string) (*results, error) {
	rs := &results{cells: map[[2]string]*cell{}}
	rpsByRun := map[[3]string]float64{} // server, mode, run
	get := func(server, mode string) *cell {
		k := [2]string{server, mode}
		c := rs.cells[k]
		if c == nil {
			c = &cell{}
			rs.cells[k] = c
			if !slices.Contains(rs.servers, server) {
				rs.servers = append(rs.servers, server)
			}
			if mode != "" && !slices.Contains(rs.modes, mode) {
				rs.modes = append(rs.modes, mode)
			}
		}
		return c
	}
	var lines []line
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("parse %q: %w", sc.Text(), err)
		}
		lines = append(lines, l)
		c := get(l.Server, l.Mode)
		switch {
		case l.NA != "":
			c.na = l.NA
		case l.Syscalls != nil:
			c.syscalls = append(c.syscalls, *l.Syscalls)
		case l.Perf != nil:
			c.perf = append(c.perf, *l.Perf)
		case l.Res != nil:
			rs.runs = max(rs.runs, l.Run)
			c.rps = append(c.rps, l.Res.RPS)
			if l.Res.CPU > 0 {
				c.loadCPU = append(c.loadCPU, l.Res.CPU)
			}
			c.p50 = append(c.p50, l.Res.P50)
			c.p99 = append(c.p99, l.Res.P99)
			c.max = append(c.max, l.Res.Max)
			if l.RSSKiB > 0 {
				c.rss = append(c.rss, l.RSSKiB)
			}
			if l.CPUTicks != nil && l.Hz > 0 && l.Res.Answered > 0 {
				c.serverUS = append(c.serverUS, *l.CPUTicks*1e6/l.Hz/l.Res.Answered)
			}
			c.failures += l.Res.Failures
			c.starved += l.Res.Starved
			rpsByRun[[3]string{l.Server, l.Mode, fmt.Sprint(l.Run)}] = l.Res.RPS
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, l := range lines {
		if l.Res == nil {
			continue
		}
		base := rpsByRun[[3]string{ref, l.Mode, fmt.Sprint(l.Run)}]
		if base > 0 {
			c := rs.cell(l.Server, l.Mode)
			c.ratio = append(c.ratio, l.Res.RPS/base)
		}
	}
	return rs, nil
}

func report(r io.Reader, w io.Writer, ref string) error {
	rs, err := parse(r, ref)
	if err != nil {
		return err
	}
	modes, servers, cells := rs.modes, rs.servers, rs.cells
	mw, sw := len("mode"), len("server")
	for _, m := range modes {
		mw = max(mw, len(m))
	}
	for _, s := range servers {
		sw = max(sw, len(s))
	}
	label := func(m, s string) string { return fmt.Sprintf("%-*s  %-*s", mw, m, sw, s) }
	var notes []string
	starNote := false
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\treq/s\tx C-ref\trange\tp50 us\tp99 us\tmax us\tmax/p99\tserver CPU us/req\tsyscalls/req strace\tsyscalls/req perf\tRSS/worker MiB\tfailures\tstarved\t\n", label("mode", "server"))
	for _, m := range modes {
		for _, s := range servers {
			c := cells[[2]string{s, m}]
			if c == nil {
				continue
			}
			if c.na != "" || len(c.rps) == 0 {
				na := c.na
				if na == "" {
					na = "no data"
				}
				if !slices.Contains(notes, s+": "+na) {
					notes = append(notes, s+": "+na)
				}
				fmt.Fprintf(tw, "%s\tn/a\t\t\t\t\t\t\t\t\t\t\t\t\t\n", label(m, s))
				continue
			}
			max, p99 := median(c.max), median(c.p99)
			spread := fmtRange(c.ratio)
			if s == ref {
				spread = ""
			}
			rps := fmt.Sprintf("%.0f", median(c.rps))
			if len(c.loadCPU) > 0 && median(c.loadCPU) >= cpuBound {
				rps += "*"
				starNote = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t\n",
				label(m, s), rps, fmtRatio(c.ratio), spread, median(c.p50), p99, max,
				fmtRatio([]float64{max / p99}), fmtNum(c.serverUS, "%.1f"), fmtNum(c.syscalls, "%.1f"), fmtNum(c.perf, "%.1f"),
				fmtNum(scale(c.rss, 1.0/1024), "%.1f"), c.failures, c.starved)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if starNote {
		fmt.Fprintf(w, "*: the load generator used %.0f%% or more of its CPU: it may be what limits this row\n", cpuBound*100)
	}
	for _, n := range notes {
		fmt.Fprintf(w, "n/a: %s\n", n)
	}
	return nil
}

// cpuBound is the share of a CPU above which the load generator may be
// the bottleneck of a measurement.
const cpuBound = 0.9

// median returns the median of v, NaN when v is empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func scale(v []float64, f float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * f
	}
	return out
}

func fmtRatio(v []float64) string {
	m := median(v)
	if math.IsNaN(m) || math.IsInf(m, 0) {
		return "-"
	}
	return fmt.Sprintf("%.2f", m)
}

// fmtRange prints the lowest and highest of v: how much the runs agree.
func fmtRange(v []float64) string {
	if len(v) < 2 {
		return ""
	}
	return fmt.Sprintf("%.2f-%.2f", slices.Min(v), slices.Max(v))
}

func fmtNum(v []float64, format string) string {
	m := median(v)
	if math.IsNaN(m) {
		return "-"
	}
	return fmt.Sprintf(format, m)
}
