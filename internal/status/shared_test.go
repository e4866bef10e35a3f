package status

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/scoreboard"
	"github.com/magnet-fcgi/magnet/internal/shdict"
)

// TestSharedOnPage: each format shows the dictionaries and keeps its shape.
func TestSharedOnPage(t *testing.T) {
	b, err := scoreboard.Create(2)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	d, err := shdict.Create("sessions", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	d.Store([]byte("k"), shdict.Value{Kind: shdict.String, Str: []byte("v")}, 0, 0, shdict.Set)
	p := &Pool{Name: "magnet", PM: "static", Board: b, Shared: []*shdict.Dict{d}}
	for _, format := range []string{Text, JSON, XML, HTML, OpenMetrics, Prometheus} {
		var out bytes.Buffer
		if err := Render(&out, p, format, true); err != nil {
			t.Fatal(err)
		}
		page := out.String()
		switch format {
		case JSON:
			var v struct {
				Shared []sharedDict `json:"shared"`
			}
			if err := json.Unmarshal(out.Bytes(), &v); err != nil || len(v.Shared) != 1 || v.Shared[0].Entries != 1 || v.Shared[0].Used != 64 {
				t.Errorf("JSON: %v %+v\n%s", err, v, page)
			}
		case XML:
			var v struct {
				Dicts []sharedDict `xml:"shared>dict"`
			}
			if err := xml.Unmarshal(out.Bytes(), &v); err != nil || len(v.Dicts) != 1 || v.Dicts[0].Name != "sessions" {
				t.Errorf("XML: %v %+v\n%s", err, v, page)
			}
		case OpenMetrics:
			if !strings.Contains(page, `magnet_shared_entries{dict="sessions"} 1`) || !strings.HasSuffix(page, "# EOF\n") {
				t.Errorf("OpenMetrics:\n%s", page)
			}
		case Text:
			if !strings.Contains(page, "shared sessions: capacity 1048576, used 64, entries 1, evictions 0\n") {
				t.Errorf("text:\n%s", page)
			}
		default:
			if !strings.Contains(page, "sessions") {
				t.Errorf("%s:\n%s", format, page)
			}
		}
	}
}
