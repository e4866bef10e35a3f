package shdict

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func newDict(t testing.TB, size int64) *Dict {
	t.Helper()
	d, err := Create("test", size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func check(t testing.TB, d *Dict) {
	t.Helper()
	if err := d.Check(); err != nil {
		t.Fatal(err)
	}
}

func str(s string) Value { return Value{Kind: String, Str: []byte(s)} }

func TestSetGet(t *testing.T) {
	d := newDict(t, 1<<20)
	long := strings.Repeat("x", 5000)
	for _, kv := range []struct {
		k string
		v Value
	}{
		{"a", str("1")},
		{"num", Value{Kind: Number, Num: 3.5}},
		{"yes", Value{Kind: Bool, Num: 1}},
		{"empty", str("")},
		{strings.Repeat("k", 300), str(long)},
	} {
		if _, err := d.Store([]byte(kv.k), kv.v, 0, 7, Set); err != nil {
			t.Fatalf("set %q: %v", kv.k, err)
		}
		v, flags, ok, err := d.Get([]byte(kv.k), nil)
		if err != nil || !ok || flags != 7 || v.Kind != kv.v.Kind || v.Num != kv.v.Num || string(v.Str) != string(kv.v.Str) {
			t.Fatalf("get %q = %+v %d %v %v, want %+v", kv.k, v, flags, ok, err, kv.v)
		}
	}
	check(t, d)
	// replace with a shorter value, then delete
	if _, err := d.Store([]byte("a"), str("two"), 0, 0, Set); err != nil {
		t.Fatal(err)
	}
	if v, _, _, _ := d.Get([]byte("a"), nil); string(v.Str) != "two" {
		t.Fatalf("a = %q", v.Str)
	}
	if err := d.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, _, ok, _ := d.Get([]byte("a"), nil); ok {
		t.Fatal("a still there after delete")
	}
	if st := d.Stats(); st.Entries != 4 {
		t.Fatalf("entries = %d, want 4", st.Entries)
	}
	check(t, d)
}

func TestAddReplaceIncr(t *testing.T) {
	d := newDict(t, 1<<20)
	k := []byte("k")
	if _, err := d.Store(k, str("v"), 0, 0, Replace); err != ErrNotFound {
		t.Fatalf("replace missing: %v", err)
	}
	if _, err := d.Store(k, str("v"), 0, 0, Add); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store(k, str("w"), 0, 0, Add); err != ErrExists {
		t.Fatalf("add existing: %v", err)
	}
	if _, err := d.Store(k, str("w"), 0, 0, Replace); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Incr(k, 1, false, 0, 0); err != ErrNotNumber {
		t.Fatalf("incr string: %v", err)
	}
	c := []byte("c")
	if _, _, err := d.Incr(c, 1, false, 0, 0); err != ErrNotFound {
		t.Fatalf("incr missing: %v", err)
	}
	if v, _, err := d.Incr(c, 2, true, 10, 0); err != nil || v != 12 {
		t.Fatalf("incr init = %v, %v", v, err)
	}
	if v, _, err := d.Incr(c, -0.5, true, 10, 0); err != nil || v != 11.5 {
		t.Fatalf("incr = %v, %v", v, err)
	}
	check(t, d)
}

func TestTTL(t *testing.T) {
	d := newDict(t, 1<<20)
	k := []byte("k")
	d.Store(k, str("v"), time.Hour, 0, Set)
	if ttl, err := d.TTL(k); err != nil || ttl <= 59*time.Minute || ttl > time.Hour {
		t.Fatalf("ttl = %v, %v", ttl, err)
	}
	if err := d.Expire(k, 0); err != nil {
		t.Fatal(err)
	}
	if ttl, err := d.TTL(k); err != nil || ttl != 0 {
		t.Fatalf("ttl after expire(0) = %v, %v", ttl, err)
	}
	d.Store([]byte("short"), str("v"), time.Millisecond, 0, Set)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, ok, _ := d.Get([]byte("short"), nil); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry with a 1ms ttl never expired")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := d.TTL([]byte("short")); err != ErrNotFound {
		t.Fatalf("ttl of expired: %v", err)
	}
	d.Store([]byte("x1"), str("v"), time.Millisecond, 0, Set)
	d.Store([]byte("x2"), str("v"), time.Millisecond, 0, Set)
	for d.FlushExpired(0) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("flush_expired never removed the two entries")
		}
		time.Sleep(time.Millisecond)
	}
	var keys []string
	d.Keys(0, func(k []byte) { keys = append(keys, string(k)) })
	if len(keys) != 1 || keys[0] != "k" {
		t.Fatalf("keys = %q", keys)
	}
	d.FlushAll()
	if st := d.Stats(); st.Entries != 0 || st.Used != 0 {
		t.Fatalf("after flush_all: %+v", st)
	}
	check(t, d)
}

func TestEviction(t *testing.T) {
	d := newDict(t, MinSize+8*pageBytes)
	val := strings.Repeat("v", 200)
	forced := false
	for i := 0; i < 2000; i++ {
		f, err := d.Store([]byte(fmt.Sprint("key", i)), str(val), 0, 0, Set)
		if err != nil {
			t.Fatalf("set %d: %v", i, err)
		}
		forced = forced || f
		d.Get([]byte("key0"), nil)
	}
	if !forced || d.Stats().Evictions == 0 {
		t.Fatal("a full store evicted nothing")
	}
	if _, _, ok, _ := d.Get([]byte("key0"), nil); !ok {
		t.Fatal("the most recently used key was evicted")
	}
	if _, _, ok, _ := d.Get([]byte("key1"), nil); ok {
		t.Fatal("the least recently used key survived")
	}
	if _, err := d.Store([]byte("big"), str(strings.Repeat("b", 1<<20)), 0, 0, Set); err != ErrNoMemory {
		t.Fatalf("set bigger than the store: %v", err)
	}
	if _, err := d.Store([]byte("safe"), str(val), 0, 0, SafeSet); err != ErrNoMemory {
		t.Fatalf("safe set on a full store: %v", err)
	}
	check(t, d)
}

func TestBadInput(t *testing.T) {
	d := newDict(t, 1<<20)
	if _, err := d.Store(nil, str("v"), 0, 0, Set); err != ErrEmptyKey {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := d.Store(make([]byte, MaxKey+1), str("v"), 0, 0, Set); err != ErrKeyTooLong {
		t.Fatalf("long key: %v", err)
	}
	if _, err := d.Store(make([]byte, MaxKey), Value{Kind: Number, Num: math.NaN()}, 0, 0, Set); err != nil {
		t.Fatalf("longest key: %v", err)
	}
	if _, err := Create("no-dash", 1<<20); err == nil {
		t.Fatal("bad name accepted")
	}
	if _, err := Create("tiny", 100); err == nil {
		t.Fatal("tiny size accepted")
	}
	check(t, d)
}

func TestEnv(t *testing.T) {
	a, b := newDict(t, 1<<20), newDict(t, 1<<20)
	if got := Env([]*Dict{a, b}, 4); got != "MAGNET_SHARED=test=4,test=5" {
		t.Fatalf("Env = %q", got)
	}
	if _, err := FromEnv("x=notanumber"); err == nil {
		t.Fatal("bad env accepted")
	}
}

func TestOpenFile(t *testing.T) {
	path := t.TempDir() + "/dict"
	a, err := OpenFile(path, "f", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := OpenFile(path, "f", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Store([]byte("k"), str("v"), 0, 0, Set)
	if v, _, ok, _ := b.Get([]byte("k"), nil); !ok || string(v.Str) != "v" {
		t.Fatal("a second mapping of the file does not see the value")
	}
	if _, err := OpenFile(path, "f", 2<<20); err == nil {
		t.Fatal("opening with another size succeeded")
	}
}
