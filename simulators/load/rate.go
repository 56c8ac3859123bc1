package load

import (
	"context"
	"sync"
	"time"
)

// Limiter is a token bucket shared by the connections of a run: it holds the total publish rate whatever the
// number of connections. Callers reserve a token and sleep until it is theirs, so waiting callers are spaced
// 1/rate apart instead of waking together.
type Limiter struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64 // tokens that may be taken at once after an idle period
	tokens float64 // may go negative: tokens reserved by waiting callers
	last   time.Time
	now    func() time.Time
}

// NewLimiter returns a limiter of rate tokens per second, starting full with burst tokens (at least 1).
func NewLimiter(rate float64, burst int) *Limiter {
	return newLimiter(rate, burst, time.Now)
}

func newLimiter(rate float64, burst int, now func() time.Time) *Limiter {
	b := float64(max(burst, 1))
	return &Limiter{rate: rate, burst: b, tokens: b, last: now(), now: now}
}

// reserve takes one token and returns how long the caller must wait before using it.
func (l *Limiter) reserve() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if elapsed := now.Sub(l.last); elapsed > 0 {
		l.tokens = min(l.burst, l.tokens+elapsed.Seconds()*l.rate)
		l.last = now
	}
	l.tokens--
	if l.tokens >= 0 {
		return 0
	}
	return time.Duration(-l.tokens / l.rate * float64(time.Second))
}

// Wait blocks until the caller may publish one message, or ctx ends. A token reserved by a caller whose ctx
// ends is not given back: the run is over then anyway.
func (l *Limiter) Wait(ctx context.Context) error {
	d := l.reserve()
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
