package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/magnet-fcgi/magnet/internal/testutil"
)

// Paths of the binaries built by TestMain.
var (
	repoRoot  string // the module root, one level up from this package
	workerBin string // cmd/magnet-worker
	refBin    string // testdata/fcgiref
	workerErr error  // why workerBin could not be built, if it could not
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "magnet-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)

	refBin = filepath.Join(dir, "fcgiref")
	if err := testutil.GoBuild(refBin, "./integration/testdata/fcgiref"); err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	workerBin = filepath.Join(dir, "magnet-worker")
	if err := testutil.GoBuild(workerBin, "./cmd/magnet-worker"); err != nil {
		// Every test that needs the worker fails with this error; the
		// tests of the server setups alone still run.
		workerErr = err
		fmt.Fprintf(os.Stderr, "integration: CANNOT BUILD magnet-worker: %v\n", err)
	}
	return m.Run()
}

// needWorker fails the test when magnet-worker did not build.
func needWorker(t *testing.T) {
	t.Helper()
	if workerErr != nil {
		t.Fatalf("magnet-worker is needed and did not build: %v", workerErr)
	}
}
