package status

import (
	"bufio"
	"encoding/xml"
	"html/template"
	"strconv"
)

// xmlStatus and xmlProc carry PHP-FPM's XML element names, in its order.
type xmlStatus struct {
	XMLName xml.Name `xml:"status"`
	poolFigures
	Processes *[]xmlProc `xml:"processes>process,omitempty"`
}

type xmlProc struct {
	PID               int    `xml:"pid"`
	State             string `xml:"state"`
	StartTime         int64  `xml:"start-time"`
	StartSince        int64  `xml:"start-since"`
	Requests          uint64 `xml:"requests"`
	RequestDuration   int64  `xml:"request-duration"`
	RequestMethod     string `xml:"request-method"`
	RequestURI        string `xml:"request-uri"`
	ContentLength     int64  `xml:"content-length"`
	User              string `xml:"user"`
	Script            string `xml:"script"`
	LastRequestCPU    string `xml:"last-request-cpu"`
	LastRequestMemory uint64 `xml:"last-request-memory"`
}

func (pg *page) xml(w *bufio.Writer, full bool) {
	v := xmlStatus{poolFigures: pg.figures()}
	if full {
		procs := make([]xmlProc, 0, len(pg.procs))
		for _, p := range pg.procRows() {
			procs = append(procs, xmlProc{
				PID: p.PID, State: p.State, StartTime: p.StartTime, StartSince: p.StartSince,
				Requests: p.Requests, RequestDuration: p.RequestDuration, RequestMethod: p.RequestMethod,
				RequestURI: p.RequestURI, ContentLength: p.ContentLength, User: p.User, Script: p.Script,
				LastRequestCPU: strconv.FormatFloat(p.LastRequestCPU, 'f', 2, 64), LastRequestMemory: p.LastRequestMemory,
			})
		}
		v.Processes = &procs
	}
	w.WriteString(`<?xml version="1.0" ?>` + "\n")
	enc := xml.NewEncoder(w)
	enc.Encode(v) // write errors surface at Flush
	w.WriteString("\n")
}

var htmlPage = template.Must(template.New("status").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>magnet status</title></head>
<body>
<table>
<tr><th>pool</th><td>{{.Pool}}</td></tr>
<tr><th>process manager</th><td>{{.ProcessManager}}</td></tr>
<tr><th>start time</th><td>{{.StartTimeText}}</td></tr>
<tr><th>start since</th><td>{{.StartSince}}</td></tr>
<tr><th>accepted conn</th><td>{{.AcceptedConn}}</td></tr>
<tr><th>listen queue</th><td>{{.ListenQueue}}</td></tr>
<tr><th>max listen queue</th><td>{{.MaxListenQueue}}</td></tr>
<tr><th>listen queue len</th><td>{{.ListenQueueLen}}</td></tr>
<tr><th>idle processes</th><td>{{.IdleProcesses}}</td></tr>
<tr><th>active processes</th><td>{{.ActiveProcesses}}</td></tr>
<tr><th>total processes</th><td>{{.TotalProcesses}}</td></tr>
<tr><th>max active processes</th><td>{{.MaxActiveProcesses}}</td></tr>
<tr><th>max children reached</th><td>{{.MaxChildrenReached}}</td></tr>
<tr><th>slow requests</th><td>{{.SlowRequests}}</td></tr>
<tr><th>watchdog kills</th><td>{{.WatchdogKills}}</td></tr>
<tr><th>max rss recycles</th><td>{{.MaxRSSRecycles}}</td></tr>
<tr><th>idle timeouts</th><td>{{.IdleTimeouts}}</td></tr>
<tr><th>read timeouts</th><td>{{.ReadTimeouts}}</td></tr>
<tr><th>send timeouts</th><td>{{.SendTimeouts}}</td></tr>
<tr><th>refused requests</th><td>{{.RefusedRequests}}</td></tr>
<tr><th>accept pauses</th><td>{{.AcceptPauses}}</td></tr>
<tr><th>stat checked scripts</th><td>{{.StatCheckedScripts}}</td></tr>
</table>
{{- if .Full}}
<table border="1">
<tr><th>pid</th><th>state</th><th>start time</th><th>start since</th><th>requests</th><th>request duration</th><th>request method</th><th>request uri</th><th>content length</th><th>user</th><th>script</th><th>last request cpu</th><th>last request memory</th></tr>
{{- range .Procs}}
<tr><td>{{.PID}}</td><td>{{.State}}</td><td>{{.StartTimeText}}</td><td>{{.StartSince}}</td><td>{{.Requests}}</td><td>{{.RequestDuration}}</td><td>{{.RequestMethod}}</td><td>{{.RequestURI}}</td><td>{{.ContentLength}}</td><td>{{.User}}</td><td>{{.Script}}</td><td>{{printf "%.2f" .LastRequestCPU}}</td><td>{{.LastRequestMemory}}</td></tr>
{{- end}}
</table>
{{- end}}
</body>
</html>
`))

// htmlProc is a process row of the HTML page.
type htmlProc struct {
	jsonProc
	StartTimeText string
}

func (pg *page) html(w *bufio.Writer, full bool) {
	h := pg.h
	data := struct {
		jsonPool
		StartTimeText string
		Full          bool
		Procs         []htmlProc
	}{jsonPool: jsonPool{poolFigures: pg.figures()}, StartTimeText: h.Start.Local().Format(textTime), Full: full}
	if full {
		for i, p := range pg.procRows() {
			data.Procs = append(data.Procs, htmlProc{p, pg.procs[i].Started.Local().Format(textTime)})
		}
	}
	htmlPage.Execute(w, data) // write errors surface at Flush
}
