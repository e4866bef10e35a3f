package status

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"html"
	"io"

	"github.com/magnet-fcgi/magnet/internal/shdict"
)

// The shared dictionaries (magnetd --shared) on the status page: per
// dictionary its capacity, the bytes its entries use, its entries and the
// live entries evicted to make room. The page of the board is rendered
// first and the dictionaries are spliced into it, so each format keeps its
// shape: a "shared" member in JSON, a <shared> element in XML, a table in
// HTML, magnet_shared_* families before OpenMetrics' "# EOF".

// sharedDict is one dictionary's figures as JSON and XML show them.
type sharedDict struct {
	Name      string `json:"name" xml:"name"`
	Capacity  uint64 `json:"capacity" xml:"capacity"`
	Used      uint64 `json:"used" xml:"used"`
	Entries   uint64 `json:"entries" xml:"entries"`
	Evictions uint64 `json:"evictions" xml:"evictions"`
}

func sharedFigures(dicts []*shdict.Dict) []sharedDict {
	out := make([]sharedDict, 0, len(dicts))
	for _, d := range dicts {
		s := d.Stats()
		out = append(out, sharedDict{Name: s.Name, Capacity: s.Capacity, Used: s.Used, Entries: s.Entries, Evictions: s.Evictions})
	}
	return out
}

// renderShared writes the board's page with the dictionaries spliced in.
func renderShared(w io.Writer, p *Pool, format string, full bool) error {
	var page bytes.Buffer
	if err := RenderBoard(&page, p.Board, format, full); err != nil {
		return err
	}
	b := page.Bytes()
	figs := sharedFigures(p.Shared)
	var extra bytes.Buffer
	switch format {
	case JSON:
		// {...}\n becomes {...,"shared":[...]}\n
		i := bytes.LastIndexByte(b, '}')
		if i < 0 {
			break
		}
		extra.WriteString(`,"shared":`)
		enc, _ := json.Marshal(figs)
		extra.Write(enc)
		b = splice(b, i, extra.Bytes())
	case XML:
		i := bytes.LastIndex(b, []byte("</status>"))
		if i < 0 {
			break
		}
		extra.WriteString("<shared>")
		for _, f := range figs {
			enc, _ := xml.Marshal(struct {
				XMLName xml.Name `xml:"dict"`
				sharedDict
			}{sharedDict: f})
			extra.Write(enc)
		}
		extra.WriteString("</shared>")
		b = splice(b, i, extra.Bytes())
	case HTML:
		i := bytes.LastIndex(b, []byte("</body>"))
		if i < 0 {
			break
		}
		extra.WriteString("<table border=\"1\">\n<tr><th>shared dict</th><th>capacity</th><th>used</th><th>entries</th><th>evictions</th></tr>\n")
		for _, f := range figs {
			fmt.Fprintf(&extra, "<tr><td>%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>\n", html.EscapeString(f.Name), f.Capacity, f.Used, f.Entries, f.Evictions)
		}
		extra.WriteString("</table>\n")
		b = splice(b, i, extra.Bytes())
	case OpenMetrics, Prometheus:
		for _, m := range []struct {
			name, typ, help string
			v               func(sharedDict) uint64
		}{
			{"magnet_shared_capacity_bytes", "gauge", "The size of the shared dictionary.", func(f sharedDict) uint64 { return f.Capacity }},
			{"magnet_shared_used_bytes", "gauge", "The bytes its entries use.", func(f sharedDict) uint64 { return f.Used }},
			{"magnet_shared_entries", "gauge", "The entries it holds.", func(f sharedDict) uint64 { return f.Entries }},
			{"magnet_shared_evictions", "counter", "The live entries evicted to make room.", func(f sharedDict) uint64 { return f.Evictions }},
		} {
			name := m.name
			if m.typ == "counter" && format == OpenMetrics {
				fmt.Fprintf(&extra, "# TYPE %s counter\n# HELP %s %s\n", name, name, m.help)
				name += "_total"
			} else {
				fmt.Fprintf(&extra, "# TYPE %s %s\n# HELP %s %s\n", name, m.typ, name, m.help)
			}
			for _, f := range figs {
				fmt.Fprintf(&extra, "%s{dict=%q} %d\n", name, f.Name, m.v(f))
			}
		}
		if i := bytes.LastIndex(b, []byte("# EOF\n")); i >= 0 && format == OpenMetrics {
			b = splice(b, i, extra.Bytes())
		} else {
			b = append(b, extra.Bytes()...)
		}
	default: // text
		for _, f := range figs {
			fmt.Fprintf(&extra, "shared %s: capacity %d, used %d, entries %d, evictions %d\n", f.Name, f.Capacity, f.Used, f.Entries, f.Evictions)
		}
		b = append(b, extra.Bytes()...)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("status: write: %w", err)
	}
	return nil
}

// splice inserts x into b before index i.
func splice(b []byte, i int, x []byte) []byte {
	out := make([]byte, 0, len(b)+len(x))
	out = append(out, b[:i]...)
	out = append(out, x...)
	return append(out, b[i:]...)
}
