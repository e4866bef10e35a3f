package main

import (
	"math/bits"
	"time"
)

// subBits sets the histogram's precision: each power of two is split into
// 1<<subBits linear buckets, so a recorded value is off by less than
// 1/(1<<subBits) (about 1.6%).
const (
	subBits    = 6
	subCount   = 1 << subBits
	numBuckets = (64 - subBits + 1) * subCount
)

// histogram counts latencies in nanoseconds in log-linear buckets, in the
// manner of HDR histograms. It has a fixed size and Record never allocates.
type histogram struct {
	counts [numBuckets]uint64
	total  uint64
	max    int64
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1
	return (shift+1)*subCount + int(v>>uint(shift)) - subCount
}

// bucketValue returns the middle of bucket i's range.
func bucketValue(i int) int64 {
	if i < subCount {
		return int64(i)
	}
	shift := i/subCount - 1
	low := uint64(i%subCount+subCount) << uint(shift)
	return int64(low + (uint64(1)<<uint(shift))/2)
}

// Record adds one latency.
func (h *histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.total++
	if int64(d) > h.max {
		h.max = int64(d)
	}
}

// Merge adds the counts of o to h.
func (h *histogram) Merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Percentile returns the latency below which p percent of the recorded
// values fall, or 0 for an empty histogram. The largest value is exact.
func (h *histogram) Percentile(p float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	rank := uint64(p / 100 * float64(h.total))
	if rank >= h.total {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return time.Duration(min(bucketValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

// Max returns the largest recorded latency.
func (h *histogram) Max() time.Duration {
	return time.Duration(h.max)
}
