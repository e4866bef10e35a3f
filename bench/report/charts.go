package main

import (
	"bytes"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"
)

// charts writes SVG charts of bench/run's or bench/scale's JSON lines into
// dir, the medians the table prints, as pictures:
//
//	rps.svg            req/s per mode (a group) and server (a bar)
//	ratio.svg          req/s over ref's in the same run, per mode and server;
//	                   whiskers span the lowest and highest run
//	latency-MODE.svg   p50, p99 and max per server in one mode, log scale
//
// When every mode counts workers ("keep-conn, 4 workers": bench/scale),
// scaling.svg and scaling-ratio.svg (req/s and the ratio against the
// number of workers, a line per server) take the place of rps.svg and
// ratio.svg.
func charts(r io.Reader, dir, ref string) error {
	rs, err := parse(r, ref)
	if err != nil {
		return err
	}
	if len(rs.modes) == 0 {
		return fmt.Errorf("no measurements")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A sans-serif face reads better at small sizes; fixFonts names its
	// metric-compatible stand-ins for viewers that lack it.
	plot.DefaultFont = font.Font{Typeface: "Liberation", Variant: "Sans"}

	runs := "median of 1 run"
	if rs.runs > 1 {
		runs = fmt.Sprintf("median of %d runs", rs.runs)
	}
	var out []namedChart
	if workers := workerCounts(rs.modes); workers != nil {
		out = append(out,
			namedChart{"scaling.svg", scalingChart(rs, workers, "Requests per second by number of workers ("+runs+")",
				"requests per second", false, ref)},
			namedChart{"scaling-ratio.svg", scalingChart(rs, workers, "Throughput relative to "+ref+" in the same run ("+runs+")",
				"req/s ÷ "+ref+"'s req/s", true, ref)})
	} else {
		out = append(out,
			namedChart{"rps.svg", rpsChart(rs, "Requests per second ("+runs+")")},
			namedChart{"ratio.svg", ratioChart(rs, ref, "Throughput relative to "+ref+" in the same run ("+runs+"; whiskers: lowest, highest)")},
			namedChart{"cpu.svg", cpuChart(rs, "Server CPU time per request, user + system (lower is better; "+runs+")")})
	}
	for _, m := range rs.modes {
		if c := latencyChart(rs, m, "Latency per request, log scale: "+m+" ("+runs+")"); c != nil {
			out = append(out, namedChart{"latency-" + slug(m) + ".svg", c})
		}
	}
	for _, c := range out {
		if c.chart == nil {
			continue
		}
		b, err := c.chart.render()
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, c.name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

type namedChart struct {
	name  string
	chart *chart
}

// chart is a plot and the legend drawn beside it, never over its data.
type chart struct {
	p      *plot.Plot
	legend []legendEntry
	w, h   vg.Length
}

type legendEntry struct {
	name   string
	thumbs []plot.Thumbnailer
}

// render draws the chart as an SVG document.
func (c *chart) render() ([]byte, error) {
	cv := vgsvg.New(c.w, c.h)
	dc := draw.New(cv)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: 0, Y: c.h}, {X: c.w, Y: c.h}, {X: c.w, Y: 0}})
	leg := plot.NewLegend()
	leg.Top, leg.Left = true, true
	leg.Padding = vg.Points(3)
	for _, e := range c.legend {
		leg.Add(e.name, e.thumbs...)
	}
	legW := leg.Rectangle(dc).Size().X + 16
	c.p.Draw(draw.Crop(dc, 0, -legW, 0, 0))
	titleH := c.p.Title.TextStyle.Height(c.p.Title.Text) + c.p.Title.Padding + 8
	leg.Draw(draw.Crop(dc, c.w-legW+8, 0, 0, -titleH))
	var buf bytes.Buffer
	if _, err := cv.WriteTo(&buf); err != nil {
		return nil, err
	}
	return fixFonts(buf.Bytes()), nil
}

// fixFonts gives the SVG's font families generic fallbacks: vgsvg names
// only the Liberation face it measured the text with, which few viewers
// have; Arial and Helvetica have its metrics.
func fixFonts(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("font-family:Liberation Sans;"),
		[]byte("font-family:Liberation Sans,Arial,Helvetica,sans-serif;"))
}

// newPlot returns a plot with the chart's title and y label and
// horizontal grid lines.
func newPlot(title, ylabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(13)
	p.Title.Padding = vg.Points(8)
	p.Y.Label.Text = ylabel
	grid := plotter.NewGrid()
	grid.Vertical.Width = 0
	grid.Horizontal.Color = color.Gray{Y: 220}
	p.Add(grid)
	return p
}

// rpsChart: a group of bars per mode, a bar per server, median req/s.
func rpsChart(rs *results, title string) *chart {
	ss, _ := medianSeries(rs, rs.modes, func(c *cell) []float64 { return c.rps })
	p := newPlot(title, "requests per second")
	return barChart(p, groupLabels(rs.modes, 16), ss, kTicks{}, false, 10*vg.Inch, 4.8*vg.Inch)
}

// cpuChart: like rpsChart, the servers' median CPU time per request, for
// the modes that measured it; nil when none did.
func cpuChart(rs *results, title string) *chart {
	var modes []string
	for _, m := range rs.modes {
		for _, s := range rs.servers {
			if c := rs.cell(s, m); c != nil && len(c.serverUS) > 0 {
				modes = append(modes, m)
				break
			}
		}
	}
	ss, some := medianSeries(rs, modes, func(c *cell) []float64 { return c.serverUS })
	if !some {
		return nil
	}
	p := newPlot(title, "server CPU µs per request")
	return barChart(p, groupLabels(modes, 16), ss, plot.DefaultTicks{}, false, 10*vg.Inch, 4.8*vg.Inch)
}

// medianSeries makes a series per server of the medians of get over the
// modes, NaN where a server has none; some says whether any value is set.
func medianSeries(rs *results, modes []string, get func(*cell) []float64) (ss []series, some bool) {
	for _, s := range rs.servers {
		se := series{name: s, color: serverColor(s, rs.servers)}
		any := false
		for _, m := range modes {
			v := math.NaN()
			if c := rs.cell(s, m); c != nil && c.na == "" && len(get(c)) > 0 {
				v, any = median(get(c)), true
			}
			se.values = append(se.values, v)
		}
		if any {
			ss = append(ss, se)
			some = true
		}
	}
	return ss, some
}

// ratioChart: like rpsChart, the median per-run ratio to ref, with ref as
// a dashed line at 1 instead of bars.
func ratioChart(rs *results, ref, title string) *chart {
	var ss []series
	for _, s := range rs.servers {
		if s == ref {
			continue
		}
		se := series{name: s, color: serverColor(s, rs.servers)}
		some := false
		for _, m := range rs.modes {
			v, lo, hi := math.NaN(), math.NaN(), math.NaN()
			if c := rs.cell(s, m); c != nil && len(c.ratio) > 0 {
				v, lo, hi = median(c.ratio), slices.Min(c.ratio), slices.Max(c.ratio)
				some = true
			}
			se.values = append(se.values, v)
			se.lo = append(se.lo, lo)
			se.hi = append(se.hi, hi)
		}
		if some {
			ss = append(ss, se)
		}
	}
	if len(ss) == 0 {
		return nil
	}
	p := newPlot(title, "req/s ÷ "+ref+"'s req/s")
	c := barChart(p, groupLabels(rs.modes, 16), ss, ratioTicks{}, false, 10*vg.Inch, 4.8*vg.Inch)
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.Color = serverColor(ref, rs.servers)
	one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	one.Width = vg.Points(1.2)
	p.Add(one)
	c.legend = append(c.legend, legendEntry{ref + " = 1", []plot.Thumbnailer{one}})
	return c
}

// latencyChart: a group of bars per server (p50, p99, max) in mode m, on a
// log scale: a starved connection's max is seconds where p50 is
// microseconds.
func latencyChart(rs *results, m, title string) *chart {
	var servers []string
	ss := []series{
		{name: "p50", color: rgb(0x9ecae1)},
		{name: "p99", color: rgb(0x3182bd)},
		{name: "max", color: rgb(0x08306b)},
	}
	for _, s := range rs.servers {
		c := rs.cell(s, m)
		if c == nil || c.na != "" || len(c.rps) == 0 || median(c.rps) <= 0 {
			continue
		}
		servers = append(servers, s)
		ss[0].values = append(ss[0].values, median(c.p50))
		ss[1].values = append(ss[1].values, median(c.p99))
		ss[2].values = append(ss[2].values, median(c.max))
	}
	if len(servers) == 0 {
		return nil
	}
	// No y label: gonum centres it on the linear midpoint of the range,
	// which a log scale puts near the top. The title says log scale.
	p := newPlot(title, "")
	p.Y.Scale = plot.LogScale{}
	return barChart(p, groupLabels(servers, 10), ss, usTicks{}, true, 9*vg.Inch, 4.2*vg.Inch)
}

// scalingChart: a line per server across the worker counts, req/s or the
// ratio to ref.
func scalingChart(rs *results, workers map[string]int, title, ylabel string, ratio bool, ref string) *chart {
	p := newPlot(title, ylabel)
	p.X.Label.Text = "workers (one keep-alive connection each)"
	p.X.Scale = plot.LogScale{}
	var counts []int
	for _, n := range workers {
		if !slices.Contains(counts, n) {
			counts = append(counts, n)
		}
	}
	slices.Sort(counts)
	var ticks plot.ConstantTicks
	for _, n := range counts {
		ticks = append(ticks, plot.Tick{Value: float64(n), Label: strconv.Itoa(n)})
	}
	p.X.Tick.Marker = ticks
	p.Y.Tick.Marker = kTicks{}
	c := &chart{p: p, w: 8 * vg.Inch, h: 4.8 * vg.Inch}
	shapes := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.PyramidGlyph{}, draw.BoxGlyph{}, draw.RingGlyph{}}
	ymax := 0.0
	for i, s := range rs.servers {
		if ratio && s == ref {
			continue
		}
		var xys plotter.XYs
		for _, m := range rs.modes {
			cl := rs.cell(s, m)
			if cl == nil || cl.na != "" || len(cl.rps) == 0 {
				continue
			}
			v := median(cl.rps)
			if ratio {
				if len(cl.ratio) == 0 {
					continue
				}
				v = median(cl.ratio)
			}
			xys = append(xys, plotter.XY{X: float64(workers[m]), Y: v})
		}
		if len(xys) == 0 {
			continue
		}
		slices.SortFunc(xys, func(a, b plotter.XY) int { return int(a.X - b.X) })
		l, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			continue
		}
		col := serverColor(s, rs.servers)
		l.Color, l.Width = col, vg.Points(1.8)
		pts.Color, pts.Shape, pts.Radius = col, shapes[i%len(shapes)], vg.Points(3.5)
		p.Add(l, pts)
		c.legend = append(c.legend, legendEntry{s, []plot.Thumbnailer{l, pts}})
		for _, xy := range xys {
			ymax = max(ymax, xy.Y)
		}
	}
	if len(c.legend) == 0 {
		return nil
	}
	if ratio {
		p.Y.Tick.Marker = ratioTicks{}
		one := plotter.NewFunction(func(float64) float64 { return 1 })
		one.Color = serverColor(ref, rs.servers)
		one.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		one.Width = vg.Points(1.2)
		p.Add(one)
		c.legend = append(c.legend, legendEntry{ref + " = 1", []plot.Thumbnailer{one}})
	}
	p.X.Min, p.X.Max = float64(counts[0])/1.2, float64(counts[len(counts)-1])*1.2
	p.Y.Min, p.Y.Max = 0, ymax*1.05
	return c
}

// series is one bar per group: values[g] (NaN: none), with optional
// whiskers from lo[g] to hi[g].
type series struct {
	name   string
	color  color.Color
	values []float64
	lo, hi []float64
}

// barChart lays out the groups along x with a bar per series in each.
func barChart(p *plot.Plot, groups []string, ss []series, ticker plot.Ticker, log bool, w, h vg.Length) *chart {
	b := &bars{series: ss, groups: len(groups)}
	p.Add(b)
	p.NominalX(groups...)
	p.Y.Tick.Marker = ticker
	lo, hi := b.span()
	if log {
		p.Y.Min, p.Y.Max = math.Pow10(int(math.Floor(math.Log10(lo)))), math.Pow10(int(math.Ceil(math.Log10(hi))))
	} else {
		p.Y.Min, p.Y.Max = 0, hi*1.05
	}
	c := &chart{p: p, w: w, h: h}
	for _, s := range ss {
		c.legend = append(c.legend, legendEntry{s.name, []plot.Thumbnailer{swatch{s.color}}})
	}
	return c
}

// groupWidth is the share of a group's slot its bars fill.
const groupWidth = 0.8

// bars draws grouped bars: group g is centred on x = g. A bar rises from
// the bottom of the axis, so that log scales work.
type bars struct {
	series []series
	groups int
}

func (b *bars) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	w := groupWidth / float64(len(b.series))
	whisker := draw.LineStyle{Color: color.Black, Width: vg.Points(0.8)}
	for i, s := range b.series {
		for g, v := range s.values {
			if math.IsNaN(v) || v <= p.Y.Min {
				continue
			}
			x := float64(g) - groupWidth/2 + float64(i)*w
			left, right := trX(x+w*0.06), trX(x+w*0.94)
			top := trY(min(v, p.Y.Max))
			c.FillPolygon(s.color, c.ClipPolygonY([]vg.Point{
				{X: left, Y: c.Min.Y}, {X: left, Y: top}, {X: right, Y: top}, {X: right, Y: c.Min.Y},
			}))
			if s.lo == nil || math.IsNaN(s.lo[g]) || s.hi[g] <= s.lo[g] {
				continue
			}
			mid, cap := trX(x+w/2), (right-left)/4
			ylo, yhi := trY(max(s.lo[g], p.Y.Min)), trY(min(s.hi[g], p.Y.Max))
			c.StrokeLine2(whisker, mid, ylo, mid, yhi)
			c.StrokeLine2(whisker, mid-cap, ylo, mid+cap, ylo)
			c.StrokeLine2(whisker, mid-cap, yhi, mid+cap, yhi)
		}
	}
}

func (b *bars) DataRange() (xmin, xmax, ymin, ymax float64) {
	lo, hi := b.span()
	return -0.5, float64(b.groups) - 0.5, lo, hi
}

// span returns the smallest positive value and the largest, whiskers
// included.
func (b *bars) span() (lo, hi float64) {
	lo, hi = math.Inf(1), 0
	for _, s := range b.series {
		for _, vs := range [][]float64{s.values, s.lo, s.hi} {
			for _, v := range vs {
				if v > 0 {
					lo, hi = min(lo, v), max(hi, v)
				}
			}
		}
	}
	if hi == 0 {
		return 1, 10
	}
	return lo, hi
}

// swatch is a bar's legend thumbnail.
type swatch struct{ color color.Color }

func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.color, []vg.Point{
		{X: c.Min.X, Y: c.Min.Y}, {X: c.Min.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Max.Y}, {X: c.Max.X, Y: c.Min.Y},
	})
}

// kTicks labels a req/s axis in thousands.
type kTicks struct{}

func (kTicks) Ticks(min, max float64) []plot.Tick {
	return niceTicks(min, max, func(v float64) string {
		switch {
		case v == 0:
			return "0"
		case math.Abs(v) >= 1e6:
			return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
		case math.Abs(v) >= 1e3:
			return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
		}
		return strconv.FormatFloat(v, 'f', -1, 64)
	})
}

// ratioTicks labels a ratio axis: "1.5×".
type ratioTicks struct{}

func (ratioTicks) Ticks(min, max float64) []plot.Tick {
	return niceTicks(min, max, func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) + "×" })
}

// niceTicks labels 4 to 10 round values (steps of 1, 2, 2.5 or 5 times a
// power of ten) between min and max, with an unlabelled tick between
// each.
func niceTicks(min, max float64, label func(float64) string) []plot.Tick {
	if !(max > min) {
		return []plot.Tick{{Value: min, Label: label(min)}}
	}
	mag := math.Pow10(int(math.Floor(math.Log10((max - min) / 4))))
	step := mag
	for _, f := range []float64{1, 2, 2.5, 5, 10} {
		step = f * mag
		if (max-min)/step <= 10 {
			break
		}
	}
	var ts []plot.Tick
	for k := math.Ceil(min / step); k*step <= max+step*1e-9; k++ {
		// 7 × 0.2 is 1.4000000000000001: keep 10 significant digits.
		v, _ := strconv.ParseFloat(strconv.FormatFloat(k*step, 'g', 10, 64), 64)
		ts = append(ts, plot.Tick{Value: v, Label: label(v)})
		if mid := v + step/2; mid <= max {
			ts = append(ts, plot.Tick{Value: mid})
		}
	}
	return ts
}

// usTicks labels a log axis of microseconds at each power of ten, with
// its unit.
type usTicks struct{}

func (usTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.LogTicks{}.Ticks(min, max)
	for i, t := range ts {
		if t.Label == "" {
			continue
		}
		switch v := t.Value; {
		case v >= 1e6:
			ts[i].Label = strconv.FormatFloat(v/1e6, 'f', -1, 64) + " s"
		case v >= 1e3:
			ts[i].Label = strconv.FormatFloat(v/1e3, 'f', -1, 64) + " ms"
		default:
			ts[i].Label = strconv.FormatFloat(v, 'f', -1, 64) + " µs"
		}
	}
	return ts
}

// knownColors keeps each server's colour the same across charts and runs.
var knownColors = map[string]uint32{
	"magnet":           0x1f77b4,
	"magnet-bp":        0x9ecae1,
	"magnet-luajit":    0x2ca02c,
	"magnet-luajit-si": 0xff7f0e,
	"magnet-luajit-bp": 0xd62728,
	"c-ref":            0x3b3b3b,
	"floor":            0xb0b0b0,
	"php-fpm":          0x9467bd,
}

// otherColors serve the servers knownColors does not name, in order.
var otherColors = []uint32{0x8c564b, 0xe377c2, 0xbcbd22, 0x17becf, 0x393b79, 0xad494a}

func serverColor(s string, servers []string) color.Color {
	if c, ok := knownColors[s]; ok {
		return rgb(c)
	}
	i := 0
	for _, o := range servers {
		if o == s {
			break
		}
		if _, ok := knownColors[o]; !ok {
			i++
		}
	}
	return rgb(otherColors[i%len(otherColors)])
}

func rgb(c uint32) color.Color {
	return color.RGBA{R: uint8(c >> 16), G: uint8(c >> 8), B: uint8(c), A: 255}
}

var workersRE = regexp.MustCompile(`(\d+) workers?$`)

// workerCounts maps each mode to the number of workers it names, or
// returns nil unless every mode names one.
func workerCounts(modes []string) map[string]int {
	w := map[string]int{}
	for _, m := range modes {
		sm := workersRE.FindStringSubmatch(m)
		if sm == nil {
			return nil
		}
		w[m], _ = strconv.Atoi(sm[1])
	}
	return w
}

// groupLabels breaks long labels into lines so that neighbours do not
// overlap: after each comma, then where a line would pass width
// characters, at a space or after a hyphen within a name ("magnet-"
// "luajit-si").
func groupLabels(names []string, width int) []string {
	out := make([]string, len(names))
	for i, n := range names {
		parts := strings.Split(n, ", ")
		for j, p := range parts {
			parts[j] = wrap(p, width)
		}
		out[i] = strings.Join(parts, ",\n")
	}
	return out
}

// wrap breaks s into lines of up to width characters where it can.
func wrap(s string, width int) string {
	var lines []string
	line := ""
	for i, w := range strings.Fields(s) {
		for j, piece := range splitAfterHyphens(w) {
			sep := ""
			if i > 0 && j == 0 && line != "" {
				sep = " "
			}
			if line != "" && len(line)+len(sep)+len(piece) > width {
				lines = append(lines, line)
				line, sep = "", ""
			}
			line += sep + piece
		}
	}
	return strings.Join(append(lines, line), "\n")
}

// splitAfterHyphens splits a word after each hyphen that follows a
// letter: "magnet-luajit-si" is "magnet-", "luajit-", "si"; "-c" stays.
func splitAfterHyphens(w string) []string {
	var out []string
	start := 0
	for i := 1; i < len(w)-1; i++ {
		if w[i] == '-' && w[i-1] != '-' && w[i-1] != ' ' {
			out = append(out, w[start:i+1])
			start = i + 1
		}
	}
	return append(out, w[start:])
}

var nonWord = regexp.MustCompile(`[^a-z0-9]+`)

// slug turns a mode into a file name part: "direct keep-conn c=2" is
// "direct-keep-conn-c-2".
func slug(s string) string {
	return strings.Trim(nonWord.ReplaceAllString(strings.ToLower(s), "-"), "-")
}
