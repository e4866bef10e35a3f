package shdict

import (
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The crash test re-executes the test binary as writer processes, which
// the test SIGKILLs at random moments, mostly while they hold the lock.

const writerEnv = "SHDICT_TEST_WRITER"

func TestMain(m *testing.M) {
	if os.Getenv(writerEnv) != "" {
		writer()
		return
	}
	os.Exit(m.Run())
}

// record is a value that carries its key and checksum: "key|payload|crc".
func record(key string, payload []byte) []byte {
	v := append([]byte(key+"|"), payload...)
	return strconv.AppendUint(append(v, '|'), uint64(crc32.ChecksumIEEE(v)), 10)
}

func verify(key string, v []byte) error {
	i := strings.LastIndexByte(string(v), '|')
	if i < 0 {
		return fmt.Errorf("%s: no checksum in %q", key, v)
	}
	sum, err := strconv.ParseUint(string(v[i+1:]), 10, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE(v[:i]) {
		return fmt.Errorf("%s: bad checksum in %.60q", key, v)
	}
	if !strings.HasPrefix(string(v), key+"|") {
		return fmt.Errorf("%s: value of another key: %.60q", key, v)
	}
	return nil
}

// writer sets, replaces, deletes and increments keys until it is killed;
// it bumps its progress counter so the test knows it runs.
func writer() {
	d, err := Open(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	progress := []byte("progress:" + strconv.Itoa(os.Getpid()))
	payload := make([]byte, 16000)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for i := 0; ; i++ {
		k := "k" + strconv.Itoa(rand.IntN(300))
		switch r := rand.IntN(10); {
		case r < 6:
			d.Store([]byte(k), Value{Kind: String, Str: record(k, payload[:rand.IntN(len(payload))])}, 0, 0, Set)
		case r < 7:
			d.Delete([]byte(k))
		default:
			d.Incr([]byte("n"+strconv.Itoa(rand.IntN(20))), 1, true, 0, 0)
		}
		if i%16 == 0 {
			d.Incr(progress, 1, true, 0, 0)
		}
	}
}

func TestCrashWriters(t *testing.T) {
	d := newDict(t, 256<<10) // small: sets evict
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), writerEnv+"=1")
		cmd.ExtraFiles = []*os.File{d.File()}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	const writers = 3
	cmds := make([]*exec.Cmd, writers)
	for i := range cmds {
		cmds[i] = start()
	}
	defer func() {
		for _, c := range cmds {
			c.Process.Kill()
			c.Wait()
		}
	}()

	var reads, verified atomic.Int64
	var failed atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, 4096)
			for {
				select {
				case <-stop:
					return
				default:
				}
				k := "k" + strconv.Itoa(rand.IntN(300))
				v, _, ok, err := d.Get([]byte(k), buf)
				reads.Add(1)
				if err != nil {
					failed.Store(err)
					return
				}
				if !ok {
					continue
				}
				if err := verify(k, v.Str); err != nil {
					failed.Store(err)
					return
				}
				verified.Add(1)
			}
		}()
	}

	iterations := 200
	if testing.Short() {
		iterations = 40
	}
	deadline := time.Now().Add(90 * time.Second)
	kills := 0
	for kills < iterations && time.Now().Before(deadline) && failed.Load() == nil {
		i := rand.IntN(writers)
		// Wait until this writer has made progress, then kill it.
		key := []byte("progress:" + strconv.Itoa(cmds[i].Process.Pid))
		want := float64(1 + rand.IntN(4))
		for {
			v, _, ok, _ := d.Get(key, nil)
			if ok && v.Num >= want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("writer %d made no progress", cmds[i].Process.Pid)
			}
			time.Sleep(100 * time.Microsecond)
		}
		// Most kills should land while the writer holds the lock.
		pid := uint32(cmds[i].Process.Pid)
		for j := 0; j < 1_000_000 && atomic.LoadUint32(d.lockWord()) != pid; j++ {
		}
		cmds[i].Process.Signal(syscall.SIGKILL)
		cmds[i].Wait()
		kills++
		d.Delete(key)
		if err := d.Check(); err != nil {
			t.Fatalf("after %d kills: %v", kills, err)
		}
		cmds[i] = start()
	}
	close(stop)
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		t.Fatalf("after %d kills: %v", kills, err)
	}
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	t.Logf("%d kills, %d reads, %d values verified, %d operations rolled back, %d evictions, %d entries",
		kills, reads.Load(), verified.Load(), st.Recovered, st.Evictions, st.Entries)
	if st.Recovered == 0 {
		t.Fatal("no kill landed inside an operation: the rollback was not exercised")
	}
	if verified.Load() == 0 {
		t.Fatal("no value was verified")
	}
}
