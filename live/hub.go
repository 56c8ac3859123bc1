package live

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	hv "github.com/useda02/hyperviseur"
)

// Event is what a live subscriber (the dashboard's websocket) receives: readings as they are stored, or an
// alert as it changes state.
type Event struct {
	Type     string       `json:"type"` // "readings" | "alert"
	Readings []hv.Reading `json:"readings,omitempty"`
	Alert    *hv.Alert    `json:"alert,omitempty"`
}

// Event types.
const (
	EventReadings = "readings"
	EventAlert    = "alert"
)

// Filter selects what a subscriber receives. Empty fields match everything; EPCIs is the subscriber's scope
// and AllEPCIs must be set for a subscriber that may see everything, including devices of no EPCI.
type Filter struct {
	AllEPCIs bool
	EPCIs    []string
	Devices  []string
	Sites    []string
	Metrics  []hv.Metric
}

func (f *Filter) reading(r *hv.Reading) bool {
	switch {
	case !f.AllEPCIs && !slices.Contains(f.EPCIs, r.EPCI):
		return false
	case len(f.Devices) > 0 && !slices.Contains(f.Devices, r.Device):
		return false
	case len(f.Sites) > 0 && !slices.Contains(f.Sites, r.Site):
		return false
	case len(f.Metrics) > 0 && !slices.Contains(f.Metrics, r.Metric):
		return false
	}
	return true
}

func (f *Filter) alert(a *hv.Alert) bool {
	if !f.AllEPCIs && !slices.Contains(f.EPCIs, a.Labels["epci"]) {
		return false
	}
	if len(f.Devices) > 0 && a.Labels["device"] != "" && !slices.Contains(f.Devices, a.Labels["device"]) {
		return false
	}
	return len(f.Sites) == 0 || a.Labels["site"] == "" || slices.Contains(f.Sites, a.Labels["site"])
}

// Hub fans events out to subscribers. Publishing never waits: each subscriber has a bounded buffer, and one
// that falls behind is dropped (its channel closed) rather than slowing ingest down or missing events
// silently; its client reconnects and reloads the current state from the API.
type Hub struct {
	mu      sync.RWMutex
	subs    map[*Subscription]struct{}
	dropped atomic.Uint64
}

// Subscription is one subscriber's feed.
type Subscription struct {
	ch     chan Event
	filter Filter
	once   sync.Once
}

// C is the feed; it is closed when the subscriber is dropped for falling behind or unsubscribed.
func (s *Subscription) C() <-chan Event { return s.ch }

// NewHub returns a hub with no subscriber.
func NewHub() *Hub { return &Hub{subs: map[*Subscription]struct{}{}} }

var _ hv.Notifier = (*Hub)(nil)

// Subscribe adds a subscriber with a buffer of size events.
func (h *Hub) Subscribe(f Filter, size int) *Subscription {
	s := &Subscription{ch: make(chan Event, max(1, size)), filter: f}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// Unsubscribe removes s and closes its feed; calling it again does nothing.
func (h *Hub) Unsubscribe(s *Subscription) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	s.once.Do(func() { close(s.ch) })
}

// Subscribers is the number of subscribers; Dropped how many were dropped for falling behind.
func (h *Hub) Subscribers() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs)
}

func (h *Hub) Dropped() uint64 { return h.dropped.Load() }

// PublishReadings sends each subscriber the readings its filter selects, in one event.
func (h *Hub) PublishReadings(rs []hv.Reading) {
	h.mu.RLock()
	if len(h.subs) == 0 {
		h.mu.RUnlock()
		return
	}
	var slow []*Subscription
	for s := range h.subs {
		var mine []hv.Reading
		for i := range rs {
			if s.filter.reading(&rs[i]) {
				mine = append(mine, rs[i])
			}
		}
		if len(mine) > 0 && !s.offer(Event{Type: EventReadings, Readings: mine}) {
			slow = append(slow, s)
		}
	}
	h.mu.RUnlock()
	h.drop(slow)
}

// Notify sends each subscriber the alerts its filter selects, one event each: the hub is the rules
// engine's notifier for the dashboard.
func (h *Hub) Notify(_ context.Context, alerts []hv.Alert) error {
	h.mu.RLock()
	var slow []*Subscription
	for s := range h.subs {
		for i := range alerts {
			if s.filter.alert(&alerts[i]) && !s.offer(Event{Type: EventAlert, Alert: &alerts[i]}) {
				slow = append(slow, s)
				break
			}
		}
	}
	h.mu.RUnlock()
	h.drop(slow)
	return nil
}

func (s *Subscription) offer(e Event) bool {
	select {
	case s.ch <- e:
		return true
	default:
		return false
	}
}

func (h *Hub) drop(slow []*Subscription) {
	for _, s := range slow {
		h.dropped.Add(1)
		h.Unsubscribe(s)
	}
}
