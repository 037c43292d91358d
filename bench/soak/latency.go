package main

import (
	"math"
	"sync"
	"time"
)

// latency is a histogram of durations, with the largest since the last look: an exchange that
// succeeds but takes seconds is no error, and yet says the node stalled.
type latency struct {
	mu         sync.Mutex // guards the following
	buckets    [latencyBuckets]int64
	count      int64
	max        time.Duration
	intervalMx time.Duration
}

// Buckets grow by 2^(1/4) from 10 µs: about 19% wide, up to about 3 hours.
const (
	latencyBuckets = 120
	latencyBase    = 10 * time.Microsecond
)

func bucketOf(d time.Duration) int {
	if d <= latencyBase {
		return 0
	}
	return min(int(4*math.Log2(float64(d)/float64(latencyBase)))+1, latencyBuckets-1)
}

// upperBound is the largest duration bucket i holds.
func upperBound(i int) time.Duration {
	return time.Duration(float64(latencyBase) * math.Exp2(float64(i)/4))
}

func (l *latency) observe(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buckets[bucketOf(d)]++
	l.count++
	l.max = max(l.max, d)
	l.intervalMx = max(l.intervalMx, d)
}

// takeIntervalMax returns the largest duration since the last call.
func (l *latency) takeIntervalMax() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.intervalMx
	l.intervalMx = 0
	return d
}

// quantile returns the upper bound of the bucket holding quantile q (0 < q ≤ 1), never above the
// largest duration seen.
func (l *latency) quantile(q float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.count == 0 {
		return 0
	}
	want := int64(math.Ceil(q * float64(l.count)))
	var seen int64
	for i, n := range l.buckets {
		if seen += n; seen >= want {
			return min(upperBound(i), l.max)
		}
	}
	return l.max
}

func (l *latency) summary() (count int64, p50, p99, p999, maximum time.Duration) {
	p50, p99, p999 = l.quantile(0.5), l.quantile(0.99), l.quantile(0.999)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count, p50, p99, p999, l.max
}
