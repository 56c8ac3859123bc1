package load

import (
	"context"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLimiterBounds(t *testing.T) {
	tests := []struct {
		name  string
		rate  float64
		burst int
		steps int           // clock advances
		step  time.Duration // per advance
		asks  int           // reservations per advance
		want  int           // reservations usable at once
	}{
		// 10 tokens earned per step, 10 asked: none waits.
		{"steady", 1000, 10, 100, 10 * time.Millisecond, 10, 1000},
		// 50 asked per step: the burst goes at once, then every caller waits its turn (the test never waits, so
		// the debt only grows).
		{"overdriven", 1000, 10, 100, 10 * time.Millisecond, 50, 10},
		{"slow", 3, 1, 60, 100 * time.Millisecond, 2, 1},
		// A second of idleness refills the bucket to its burst, not to a second's worth of tokens.
		{"idle then burst", 500, 5, 3, time.Second, 100, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
			l := newLimiter(tt.rate, tt.burst, clk.now)
			immediate := 0 // reservations usable at once
			elapsed := time.Duration(0)
			for range tt.steps {
				for range tt.asks {
					if l.reserve() == 0 {
						immediate++
					}
				}
				clk.add(tt.step)
				elapsed += tt.step
			}
			// A token bucket never lets more through at once than its burst plus what the rate earned.
			limit := tt.burst + int(tt.rate*elapsed.Seconds())
			if immediate > limit {
				t.Errorf("%d reservations went through at once, the bucket allows at most %d", immediate, limit)
			}
			if immediate != tt.want {
				t.Errorf("%d reservations went through at once, want %d", immediate, tt.want)
			}
		})
	}
}

func TestLimiterSpacesWaiters(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	l := newLimiter(100, 1, clk.now)
	if d := l.reserve(); d != 0 {
		t.Fatalf("the first token waits %s, want 0 (the bucket starts full)", d)
	}
	// With the clock stopped, the k-th waiting caller is told to wait k/rate: callers are spaced, not bunched.
	for k := 1; k <= 5; k++ {
		want := time.Duration(k) * 10 * time.Millisecond
		if d := l.reserve(); d < want-time.Microsecond || d > want+time.Microsecond {
			t.Errorf("waiter %d: wait %s, want %s", k, d, want)
		}
	}
}

func TestLimiterWaitReturnsOnCancel(t *testing.T) {
	l := NewLimiter(0.001, 1) // one token per 1000 s: the second Wait must block
	ctx, cancel := context.WithCancel(context.Background())
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("first wait: %v", err)
	}
	done := make(chan error)
	go func() { done <- l.Wait(ctx) }()
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Wait returned nil after its context was cancelled with no token available")
	}
}
