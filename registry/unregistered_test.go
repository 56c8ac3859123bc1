package registry

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func ids(list []UnregisteredDevice) string {
	var out []string
	for _, d := range list {
		out = append(out, d.ID)
	}
	return strings.Join(out, ",")
}

func TestUnregisteredOrderAndBound(t *testing.T) {
	t0 := time.Date(2025, 1, 15, 8, 0, 0, 0, time.UTC)
	u := NewUnregistered(3)
	u.Observe("a", []byte(`{"power_w":1}`), t0)
	u.Observe("b", []byte(`{"power_w":2}`), t0.Add(time.Minute))
	u.Observe("c", []byte(`{"power_w":3}`), t0.Add(2*time.Minute))
	u.Observe("a", []byte(`{"power_w":4}`), t0.Add(3*time.Minute))
	if got := ids(u.List()); got != "a,c,b" {
		t.Fatalf("order: got %s, want a,c,b", got)
	}
	a := u.List()[0]
	if a.Count != 2 || !a.FirstSeen.Equal(t0) || !a.LastSeen.Equal(t0.Add(3*time.Minute)) || a.LastPayload != `{"power_w":4}` {
		t.Fatalf("a: got %+v", a)
	}
	// Full: a new device evicts the least recently heard (b), then c.
	u.Observe("d", nil, t0.Add(4*time.Minute))
	u.Observe("e", nil, t0.Add(5*time.Minute))
	if got := ids(u.List()); got != "e,d,a" {
		t.Fatalf("after eviction: got %s, want e,d,a", got)
	}
	if u.Len() != 3 || u.Evicted() != 2 {
		t.Fatalf("len %d evicted %d, want 3 and 2", u.Len(), u.Evicted())
	}
	// A recycled slot starts afresh.
	if d := u.List()[1]; d.Count != 1 || d.LastPayload != "" || !d.FirstSeen.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("d: got %+v", d)
	}
	// A late message (older timestamp) counts but does not move last seen back.
	u.Observe("e", nil, t0)
	if e := u.List()[0]; e.ID != "e" || e.Count != 2 || !e.LastSeen.Equal(t0.Add(5*time.Minute)) || !e.FirstSeen.Equal(t0) {
		t.Fatalf("e: got %+v", e)
	}
	u.Forget("d")
	if got := ids(u.List()); got != "e,a" {
		t.Fatalf("after forget: got %s", got)
	}
}

func TestUnregisteredPayload(t *testing.T) {
	u := NewUnregistered(0)
	buf := []byte(`{"ts":1}`)
	u.Observe("x", buf, time.Now())
	copy(buf, "XXXXXXXX") // the caller reuses its buffer
	if p := u.List()[0].LastPayload; p != `{"ts":1}` {
		t.Fatalf("payload aliased the caller's buffer: %q", p)
	}
	// 1023 ASCII bytes then a 2-byte rune straddling the limit: the cut keeps valid UTF-8.
	long := strings.Repeat("a", MaxUnregisteredPayload-1) + "é" + strings.Repeat("b", 100)
	u.Observe("x", []byte(long), time.Now())
	d := u.List()[0]
	if !d.Truncated || len(d.LastPayload) != MaxUnregisteredPayload-1 || !utf8.ValidString(d.LastPayload) {
		t.Fatalf("truncated payload: len %d, truncated %v", len(d.LastPayload), d.Truncated)
	}
	u.Observe("y", []byte(strings.Repeat("z", MaxUnregisteredPayload)), time.Now())
	if d := u.List()[0]; d.Truncated || len(d.LastPayload) != MaxUnregisteredPayload {
		t.Fatalf("payload at the limit: len %d, truncated %v", len(d.LastPayload), d.Truncated)
	}
	u.Observe(strings.Repeat("i", 5000), nil, time.Now())
	if d := u.List()[0]; len(d.ID) != MaxUnregisteredIDLen {
		t.Fatalf("long id kept at %d bytes", len(d.ID))
	}
}

// TestUnregisteredFlood publishes many random ids from several goroutines: the tracker stays bounded and
// consistent (run with -race).
func TestUnregisteredFlood(t *testing.T) {
	const max, workers, each = 50, 4, 2000
	u := NewUnregistered(max)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				u.Observe(fmt.Sprintf("rand-%d-%d", w, i), []byte("payload"), t0.Add(time.Duration(i)*time.Millisecond))
				if i%500 == 0 {
					_ = u.List()
				}
			}
		}()
	}
	wg.Wait()
	list := u.List()
	if len(list) != max || u.Evicted() != workers*each-max {
		t.Fatalf("len %d evicted %d", len(list), u.Evicted())
	}
	for i := 1; i < len(list); i++ {
		if list[i].LastSeen.After(list[i-1].LastSeen) {
			t.Fatalf("not sorted by last seen at %d", i)
		}
	}
}

func TestUnregisteredObserveNoAlloc(t *testing.T) {
	u := NewUnregistered(10)
	p := []byte(`{"power_w":12}`)
	now := time.Now()
	u.Observe("known-unknown", p, now)
	if n := testing.AllocsPerRun(100, func() { u.Observe("known-unknown", p, now) }); n != 0 {
		t.Errorf("Observe of a tracked device allocates %v times", n)
	}
}

func BenchmarkUnregisteredFlood(b *testing.B) {
	u := NewUnregistered(DefaultMaxUnregistered)
	ids := make([]string, 4096)
	for i := range ids {
		ids[i] = fmt.Sprintf("rand-%d", i)
	}
	p := []byte(`{"power_w":12}`)
	now := time.Now()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		u.Observe(ids[i%len(ids)], p, now)
		i++
	}
}
