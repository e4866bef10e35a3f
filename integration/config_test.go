package integration

import (
	"os"
	"path/filepath"
	"testing"
	"text/template"
)

// serverConfig fills the web server configuration templates.
type serverConfig struct {
	Dir     string // temporary directory for sockets, logs and pid files
	DocRoot string
	Port    int
	Worker  string // the FastCGI program (lighttpd's bin-path)
	Socket  string // the FastCGI socket (nginx's upstream)
}

// writeConfig renders testdata/<name>.tmpl into c.Dir/<name> and returns
// the path.
func writeConfig(t *testing.T, name string, c serverConfig) string {
	t.Helper()
	tmpl, err := template.ParseFiles(filepath.Join("testdata", name+".tmpl"))
	if err != nil {
		t.Fatalf("config template: %v", err)
	}
	path := filepath.Join(c.Dir, name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := tmpl.Execute(f, c); err != nil {
		t.Fatalf("config %s: %v", name, err)
	}
	return path
}
