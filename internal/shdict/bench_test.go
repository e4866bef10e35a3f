package shdict

import (
	"strconv"
	"testing"
)

func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = []byte("key:" + strconv.Itoa(i))
	}
	return keys
}

func benchDict(b *testing.B, keys [][]byte) *Dict {
	d := newDict(b, 64<<20)
	for _, k := range keys {
		if _, err := d.Store(k, Value{Kind: Number, Num: 1}, 0, 0, Set); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

func benchGet(b *testing.B, nkeys int, parallel bool) {
	keys := benchKeys(nkeys)
	d := benchDict(b, keys)
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		buf := make([]byte, 0, 64)
		for i := 0; i < b.N; i++ {
			if _, _, ok, _ := d.Get(keys[i%nkeys], buf); !ok {
				b.Fatal("miss")
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		buf := make([]byte, 0, 64)
		for i := 0; pb.Next(); i++ {
			d.Get(keys[i%nkeys], buf)
		}
	})
}

func benchIncr(b *testing.B, nkeys int, parallel bool) {
	keys := benchKeys(nkeys)
	d := benchDict(b, keys)
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		for i := 0; i < b.N; i++ {
			if _, _, err := d.Incr(keys[i%nkeys], 1, false, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	b.RunParallel(func(pb *testing.PB) {
		for i := 0; pb.Next(); i++ {
			d.Incr(keys[i%nkeys], 1, false, 0, 0)
		}
	})
}

func BenchmarkGetOneKey(b *testing.B)            { benchGet(b, 1, false) }
func BenchmarkGetManyKeys(b *testing.B)          { benchGet(b, 100000, false) }
func BenchmarkGetOneKeyParallel(b *testing.B)    { benchGet(b, 1, true) }
func BenchmarkGetManyKeysParallel(b *testing.B)  { benchGet(b, 100000, true) }
func BenchmarkIncrOneKey(b *testing.B)           { benchIncr(b, 1, false) }
func BenchmarkIncrManyKeys(b *testing.B)         { benchIncr(b, 100000, false) }
func BenchmarkIncrOneKeyParallel(b *testing.B)   { benchIncr(b, 1, true) }
func BenchmarkIncrManyKeysParallel(b *testing.B) { benchIncr(b, 100000, true) }

func BenchmarkSet(b *testing.B) {
	keys := benchKeys(10000)
	d := newDict(b, 64<<20)
	v := Value{Kind: String, Str: make([]byte, 100)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		d.Store(keys[i%len(keys)], v, 0, 0, Set)
	}
}
