package ingest

import (
	"sync"
	"time"
)

// logLimiter lets one log line per key through per period, so a device spamming bad payloads costs one line a
// minute. It forgets everything when it holds too many keys rather than grow without bound.
type logLimiter struct {
	mu     sync.Mutex
	period time.Duration
	max    int
	last   map[string]time.Time
}

func newLogLimiter(period time.Duration, max int) *logLimiter {
	return &logLimiter{period: period, max: max, last: make(map[string]time.Time)}
}

func (l *logLimiter) allow(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[key]; ok && now.Sub(t) < l.period {
		return false
	}
	if len(l.last) >= l.max {
		clear(l.last)
	}
	l.last[key] = now
	return true
}
