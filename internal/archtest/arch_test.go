// Package archtest checks the import rules that ARCHITECTURE.md states, so
// that the package layout stays the architecture as the code changes.
package archtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

const module = "github.com/magnet-fcgi/magnet"

// goList runs `go list` at the repository root with extra environment and
// returns one line per package.
func goList(t *testing.T, env []string, args ...string) []string {
	t.Helper()
	root, err := testutil.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", append([]string{"list"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// local strips the module path; it returns "" for a package outside it.
func local(path string) string {
	if path == module {
		return "."
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return rel
}

// projectImports maps each package of the module to the project packages
// its non-test files import directly.
func projectImports(t *testing.T) map[string][]string {
	m := make(map[string][]string)
	for _, line := range goList(t, nil, "-f", "{{.ImportPath}} {{join .Imports \" \"}}", "./...") {
		fields := strings.Fields(line)
		pkg := local(fields[0])
		m[pkg] = nil
		for _, imp := range fields[1:] {
			if l := local(imp); l != "" {
				m[pkg] = append(m[pkg], l)
			}
		}
	}
	return m
}

// TestImportRules checks each package's direct imports against the rules.
func TestImportRules(t *testing.T) {
	allowed := map[string][]string{
		"protocol":            {},
		"luabind":             {},
		"scripts":             {"luabind"},
		"worker":              {"protocol", "scripts", "luabind", "internal/shdict", "internal/handoff", "sqlbind", "redisbind"}, // binds magnet.shared, luasql, magnet.redis; speaks the hand-off
		"sqlbind":             {"luabind", "internal/pollconn"},                                                                  // luasql on database/sql, outside the leaf
		"redisbind":           {"luabind", "internal/pollconn"},                                                                  // magnet.redis on go-redis, outside the leaf
		"supervisor":          {"internal/socket", "internal/handoff"},
		"internal/socket":     {},
		"internal/scoreboard": {},
		"internal/shdict":     {},
		"internal/handoff":    {},
		"internal/status":     {"internal/scoreboard", "internal/shdict"},
		"internal/statushttp": {"internal/status"},
		"internal/devhttp":    {"protocol"},
		"internal/accesslog":  {},
		"internal/daemon":     {"internal/socket"},
		"internal/testutil":   {},
		"internal/version":    {},
		"internal/bytesize":   {},
		"internal/pollconn":   {},
		"internal/memtrim":    {},
	}
	imports := projectImports(t)
	for pkg, rule := range allowed {
		if _, ok := imports[pkg]; !ok {
			t.Errorf("%s: no such package; update the rules here and in ARCHITECTURE.md", pkg)
		}
		for _, imp := range imports[pkg] {
			if !slices.Contains(rule, imp) {
				t.Errorf("%s imports %s, which ARCHITECTURE.md forbids", pkg, imp)
			}
		}
	}
	for pkg, imps := range imports {
		if _, ruled := allowed[pkg]; !ruled && strings.HasPrefix(pkg, "internal/") && pkg != "internal/archtest" {
			t.Errorf("%s has no rule: add it here and to ARCHITECTURE.md", pkg)
		}
		if pkg == "internal/testutil" {
			continue
		}
		if slices.Contains(imps, "internal/testutil") {
			t.Errorf("%s imports internal/testutil outside its tests", pkg)
		}
	}
}

// deps lists what a command links, by import path, built with env.
func deps(t *testing.T, pkg string, env ...string) []string {
	return goList(t, env, "-deps", "-f", "{{.ImportPath}}", "./"+pkg)
}

// TestBinaries checks what each program links, transitively.
func TestBinaries(t *testing.T) {
	magnetd := deps(t, "cmd/magnetd", "CGO_ENABLED=0")
	for _, p := range magnetd {
		switch l := local(p); {
		case l == "luabind" || l == "scripts" || l == "worker" || l == "sqlbind" || l == "redisbind":
			t.Errorf("magnetd links %s, which runs Lua", l)
		case p == "runtime/cgo" || strings.Contains(p, "golua"):
			t.Errorf("magnetd links %s, which needs cgo", p)
		case strings.HasPrefix(p, "github.com/go-sql-driver/") || strings.HasPrefix(p, "github.com/jackc/") ||
			strings.HasPrefix(p, "github.com/mattn/go-sqlite3"):
			t.Errorf("magnetd links %s, a database driver only scripts use", p)
		case strings.HasPrefix(p, "github.com/redis/"):
			t.Errorf("magnetd links %s, the Redis client only scripts use", p)
		}
	}
	worker := deps(t, "cmd/magnet-worker")
	for _, p := range worker {
		if l := local(p); l == "supervisor" || strings.HasPrefix(l, "supervisor/") {
			t.Errorf("magnet-worker links %s", l)
		}
		if p == "net/http" {
			t.Errorf("magnet-worker links net/http")
		}
	}
	// The plotting library draws bench/'s charts and nothing else.
	for _, p := range slices.Concat(magnetd, worker) {
		if strings.HasPrefix(p, "gonum.org/") {
			t.Errorf("a magnet program links %s, which only bench/ may import", p)
		}
	}
}

// TestMagnetdWithoutCgo builds magnetd with CGO_ENABLED=0, as the Makefile
// does: listing its packages is not enough to prove they build.
func TestMagnetdWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	out := filepath.Join(t.TempDir(), "magnetd")
	if err := testutil.GoBuild(out, "./cmd/magnetd", "CGO_ENABLED=0"); err != nil {
		t.Fatal(err)
	}
}
