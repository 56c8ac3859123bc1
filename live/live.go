// Package live keeps the latest value of every (device, metric) in memory, fed by ingest once readings are
// durably stored, and read by the API; the Hub (hub.go) pushes the same readings to websocket clients.
package live

import (
	"slices"
	"strings"
	"sync"

	hv "github.com/useda02/hyperviseur"
)

// State is the live state. It is safe for concurrent use.
//
// It holds one small sorted slice per device, not a map of full readings: it is most of the service's
// memory per device that is not the store (the site labels are the registry's, not repeated here).
type State struct {
	mu      sync.RWMutex
	devices map[string][]point
	metrics map[hv.Metric]hv.Metric // one copy of each metric name for every device
}

// point is the newest value of one metric of a device.
type point struct {
	metric hv.Metric
	value  float64
	t      int64
}

// New returns an empty state.
func New() *State {
	return &State{devices: make(map[string][]point), metrics: make(map[hv.Metric]hv.Metric)}
}

// Update records readings; an older reading never replaces a newer one.
func (s *State) Update(rs []hv.Reading) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		ps, ok := s.devices[r.Device]
		i, found := slices.BinarySearchFunc(ps, r.Metric, func(p point, m hv.Metric) int {
			return strings.Compare(string(p.metric), string(m))
		})
		switch {
		case found:
			if r.Time >= ps[i].t {
				ps[i].value, ps[i].t = r.Value, r.Time
			}
			continue
		case !ok:
			// The reading's strings may point into a whole payload buffer: keep only their own bytes.
			ps = make([]point, 0, 2)
			r.Device = strings.Clone(r.Device)
		}
		m, ok := s.metrics[r.Metric]
		if !ok {
			m = hv.Metric(strings.Clone(string(r.Metric)))
			s.metrics[m] = m
		}
		s.devices[r.Device] = slices.Insert(ps, i, point{m, r.Value, r.Time})
	}
}

// Latest returns the newest reading of each metric of a device (device, metric, value and time), sorted by
// metric; false if never heard.
func (s *State) Latest(device string) ([]hv.Reading, bool) {
	s.mu.RLock()
	ps, ok := s.devices[device]
	out := make([]hv.Reading, len(ps))
	for i, p := range ps {
		out[i] = hv.Reading{Device: device, Metric: p.metric, Value: p.value, Time: p.t}
	}
	s.mu.RUnlock()
	return out, ok
}

// LastSeen returns the time (Unix ms) of the newest reading of a device, 0 if never heard.
func (s *State) LastSeen(device string) int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var t int64
	for _, p := range s.devices[device] {
		t = max(t, p.t)
	}
	return t
}
