package main

import (
	"testing"
	"time"
)

func TestBucketPrecision(t *testing.T) {
	prev := -1
	for v := uint64(0); v < 1<<40; v = v*9/8 + 1 {
		i := bucketOf(v)
		if i < prev {
			t.Fatalf("bucketOf(%d) = %d, below the previous %d", v, i, prev)
		}
		prev = i
		if i >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d, out of range", v, i)
		}
		got := bucketValue(i)
		if diff := float64(got) - float64(v); diff > float64(v)/subCount+1 || -diff > float64(v)/subCount+1 {
			t.Errorf("bucketValue(bucketOf(%d)) = %d, more than 1/%d off", v, got, subCount)
		}
	}
}

func TestPercentile(t *testing.T) {
	var h histogram
	if h.Percentile(50) != 0 {
		t.Fatal("empty histogram: want 0")
	}
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 500 * time.Microsecond}, {99, 990 * time.Microsecond}, {100, 1000 * time.Microsecond}} {
		got := h.Percentile(c.p)
		if d := got - c.want; d > c.want/50 || -d > c.want/50 {
			t.Errorf("p%v = %v, want about %v", c.p, got, c.want)
		}
	}
	if h.Max() != time.Millisecond {
		t.Errorf("max = %v, want 1ms", h.Max())
	}
	var m histogram
	m.Record(5 * time.Second)
	m.Merge(&h)
	if m.total != 1001 || m.Max() != 5*time.Second {
		t.Errorf("merged: total %d max %v", m.total, m.Max())
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := new(histogram)
	if n := testing.AllocsPerRun(1000, func() { h.Record(123 * time.Microsecond) }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}
