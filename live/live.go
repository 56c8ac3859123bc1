// Package live keeps the latest value of every (device, metric) in memory, fed by ingest once readings are
// durably stored, and read by the API and (later) the websocket hub.
package live

import (
	"sort"
	"sync"

	hv "github.com/useda02/hyperviseur"
)

// State is the live state. It is safe for concurrent use.
type State struct {
	mu      sync.RWMutex
	devices map[string]map[hv.Metric]hv.Reading
}

// New returns an empty state.
func New() *State { return &State{devices: make(map[string]map[hv.Metric]hv.Reading)} }

// Update records readings; an older reading never replaces a newer one.
func (s *State) Update(rs []hv.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		m := s.devices[r.Device]
		if m == nil {
			m = make(map[hv.Metric]hv.Reading, 4)
			s.devices[r.Device] = m
		}
		if cur, ok := m[r.Metric]; !ok || r.Time >= cur.Time {
			m[r.Metric] = r
		}
	}
}

// Latest returns the newest reading of each metric of a device, sorted by metric; false if never heard.
func (s *State) Latest(device string) ([]hv.Reading, bool) {
	s.mu.RLock()
	m, ok := s.devices[device]
	out := make([]hv.Reading, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Metric < out[j].Metric })
	return out, ok
}

// LastSeen returns the time (Unix ms) of the newest reading of a device, 0 if never heard.
func (s *State) LastSeen(device string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var t int64
	for _, r := range s.devices[device] {
		t = max(t, r.Time)
	}
	return t
}
