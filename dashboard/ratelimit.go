package dashboard

import (
	"container/list"
	"sync"
	"time"
)

// loginLimiter counts failed logins per key (a user name or a client address) over a sliding window: after
// limit failures within window the key is locked until the oldest of them leaves the window. Memory is
// bounded: beyond max keys the least recently failed one is forgotten.
type loginLimiter struct {
	limit  int
	window time.Duration
	max    int

	mu      sync.Mutex
	entries map[string]*list.Element // of *failures
	lru     *list.List               // most recent failure first
}

type failures struct {
	key    string
	times  []time.Time // the last failures, oldest first, at most limit
	locked bool        // the lockout was reported
}

func newLoginLimiter(limit int, window time.Duration, max int) *loginLimiter {
	return &loginLimiter{limit: limit, window: window, max: max, entries: map[string]*list.Element{}, lru: list.New()}
}

// prune drops the failures that left the window; below the limit the lockout is over.
func (l *loginLimiter) prune(f *failures, now time.Time) {
	i := 0
	for i < len(f.times) && now.Sub(f.times[i]) >= l.window {
		i++
	}
	f.times = f.times[i:]
	if len(f.times) < l.limit {
		f.locked = false
	}
}

// retryAfter returns how long key stays locked at now; 0: not locked.
func (l *loginLimiter) retryAfter(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		return 0
	}
	f := e.Value.(*failures)
	l.prune(f, now)
	if len(f.times) == 0 {
		l.lru.Remove(e)
		delete(l.entries, key)
		return 0
	}
	if len(f.times) < l.limit {
		return 0
	}
	return f.times[0].Add(l.window).Sub(now)
}

// fail records a failure of key at now and reports whether it starts a lockout, once per lockout.
func (l *loginLimiter) fail(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.entries[key]
	if !ok {
		for l.lru.Len() >= l.max {
			old := l.lru.Back()
			l.lru.Remove(old)
			delete(l.entries, old.Value.(*failures).key)
		}
		e = l.lru.PushFront(&failures{key: key})
		l.entries[key] = e
	} else {
		l.lru.MoveToFront(e)
	}
	f := e.Value.(*failures)
	l.prune(f, now)
	f.times = append(f.times, now)
	if len(f.times) > l.limit {
		f.times = f.times[len(f.times)-l.limit:]
	}
	if len(f.times) >= l.limit && !f.locked {
		f.locked = true
		return true
	}
	return false
}

// reset forgets key's failures (a successful login).
func (l *loginLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.entries[key]; ok {
		l.lru.Remove(e)
		delete(l.entries, key)
	}
}

// len is the number of keys held, for tests.
func (l *loginLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.entries)
}
