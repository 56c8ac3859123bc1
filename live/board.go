package live

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Board is the live picture the dashboard's map and tiles show, kept from the hub's events: each device's
// newest values, per commune the sum of its devices' newest power by fluid and its open alerts by severity,
// and the open alerts. Changes are marked and taken by Flush, so a fan-out sends each client the coalesced
// changes of a tick — a few a second — whatever the reading rate: 100 000 devices reporting make one entry
// per changed device or commune per tick, not one message per reading.
type Board struct {
	staleAfter time.Duration
	now        func() time.Time

	mu          sync.Mutex
	devices     map[string]*DeviceState
	byCommune   map[string][]*DeviceState
	communes    map[string]*CommuneState
	alerts      map[string]hv.Alert // open: pending or firing, by fingerprint
	dirtyDev    map[string]struct{}
	dirtyCom    map[string]struct{}
	dirtyAlerts map[string]hv.Alert // changed since the last flush, resolved ones included
	seq         uint64
	lastFull    time.Time

	resubscribed atomic.Uint64
}

// DeviceState is a device's newest values.
type DeviceState struct {
	Device  string                `json:"device"`
	Site    string                `json:"site,omitempty"`
	Commune string                `json:"commune,omitempty"`
	EPCI    string                `json:"epci,omitempty"`
	Fluid   hv.Fluid              `json:"fluid,omitempty"`
	Values  map[hv.Metric]float64 `json:"values"`
	Time    int64                 `json:"t"` // newest reading, Unix ms
	times   map[hv.Metric]int64   // each value's reading time
	seen    int64                 // when the board last received a reading of it, Unix ms
}

// CommuneState is a commune's aggregate: the power its devices draw now by fluid (devices heard within the
// board's staleness window, by the time the board received their readings), the devices counted, and its
// open alerts by severity.
type CommuneState struct {
	Commune string               `json:"commune"`
	EPCI    string               `json:"epci,omitempty"`
	PowerW  map[hv.Fluid]float64 `json:"power_w"`
	Devices int                  `json:"devices"`
	Stale   int                  `json:"stale,omitempty"` // devices not heard within the window
	Alerts  map[hv.Severity]int  `json:"alerts"`
	Time    int64                `json:"t"` // newest reading of its devices, Unix ms
}

// Changes are what changed since the previous Flush; Seq numbers the flushes.
type Changes struct {
	Seq      uint64
	Devices  []DeviceState
	Communes []CommuneState
	Alerts   []hv.Alert
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Devices) == 0 && len(c.Communes) == 0 && len(c.Alerts) == 0
}

// NewBoard returns an empty board; a device not heard for staleAfter no longer counts in its commune's
// power (0: one hour); now is the clock (nil: time.Now).
func NewBoard(staleAfter time.Duration, now func() time.Time) *Board {
	if staleAfter <= 0 {
		staleAfter = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	return &Board{staleAfter: staleAfter, now: now, devices: map[string]*DeviceState{},
		byCommune: map[string][]*DeviceState{}, communes: map[string]*CommuneState{}, alerts: map[string]hv.Alert{},
		dirtyDev: map[string]struct{}{}, dirtyCom: map[string]struct{}{}, dirtyAlerts: map[string]hv.Alert{}}
}

// Observe takes stored readings. Interval consumption (delta) series are left out: the board shows states.
// A device is live while its readings keep arriving, whatever their stamps: a meter emptying its backlog after
// an outage, or the demo replaying the past day, reports old stamps but is there.
func (b *Board) Observe(rs []hv.Reading) { b.observe(rs, false) }

// Seed takes the newest readings a restarted service still holds: each device counts as heard when its
// reading was stamped.
func (b *Board) Seed(rs []hv.Reading) { b.observe(rs, true) }

func (b *Board) observe(rs []hv.Reading, seed bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now().UnixMilli()
	for i := range rs {
		r := &rs[i]
		// Devices of no commune (heard but not registered) are on no map and in no scope; leaving them out
		// also bounds the board by the registry, whatever ids the broker sees.
		if _, delta := r.Metric.DeltaOf(); delta || r.Device == "" || r.Commune == "" {
			continue
		}
		d, ok := b.devices[r.Device]
		if !ok {
			d = &DeviceState{Device: strings.Clone(r.Device), Site: strings.Clone(r.Site), Commune: strings.Clone(r.Commune),
				EPCI: strings.Clone(r.EPCI), Fluid: r.Fluid, Values: map[hv.Metric]float64{}, times: map[hv.Metric]int64{}}
			b.devices[d.Device] = d
			b.byCommune[d.Commune] = append(b.byCommune[d.Commune], d)
		}
		t, known := d.times[r.Metric]
		switch {
		case known && r.Time < t:
			continue // a late reading: the newest value stays
		case !known:
			m := hv.Metric(strings.Clone(string(r.Metric))) // the reading's strings may point into a payload
			d.Values[m], d.times[m] = r.Value, r.Time
		default:
			d.Values[r.Metric], d.times[r.Metric] = r.Value, r.Time
		}
		d.Time = max(d.Time, r.Time)
		seen := now
		if seed {
			seen = r.Time
		}
		d.seen = max(d.seen, seen)
		b.dirtyDev[d.Device] = struct{}{}
		b.dirtyCom[d.Commune] = struct{}{}
	}
}

// Notify takes alert changes (the board is a notifier of the rules engine, through the hub).
func (b *Board) Notify(_ context.Context, alerts []hv.Alert) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, a := range alerts {
		if a.State == hv.AlertResolved {
			delete(b.alerts, a.Fingerprint)
		} else {
			b.alerts[a.Fingerprint] = a
		}
		b.dirtyAlerts[a.Fingerprint] = a
		if c := a.Labels["commune"]; c != "" {
			b.dirtyCom[c] = struct{}{}
		}
	}
	return nil
}

var _ hv.Notifier = (*Board)(nil)

// Flush returns what changed since the previous call, communes recomputed from their devices (no drift from
// adding differences). Once a minute every commune is recomputed, so that devices turning stale leave the sums.
func (b *Board) Flush() Changes {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	if now.Sub(b.lastFull) >= time.Minute {
		b.lastFull = now
		for c := range b.byCommune {
			b.dirtyCom[c] = struct{}{}
		}
	}
	b.seq++
	ch := Changes{Seq: b.seq}
	for id := range b.dirtyDev {
		ch.Devices = append(ch.Devices, b.devices[id].clone())
	}
	alertsBy := b.alertCounts(b.dirtyCom)
	for c := range b.dirtyCom {
		st := b.commune(c, now, alertsBy[c])
		if old, ok := b.communes[c]; ok && old.same(st) {
			continue
		}
		b.communes[c] = st
		ch.Communes = append(ch.Communes, st.clone())
	}
	for _, a := range b.dirtyAlerts {
		ch.Alerts = append(ch.Alerts, a)
	}
	clear(b.dirtyDev)
	clear(b.dirtyCom)
	clear(b.dirtyAlerts)
	slices.SortFunc(ch.Devices, func(x, y DeviceState) int { return strings.Compare(x.Device, y.Device) })
	slices.SortFunc(ch.Communes, func(x, y CommuneState) int { return strings.Compare(x.Commune, y.Commune) })
	slices.SortFunc(ch.Alerts, func(x, y hv.Alert) int { return strings.Compare(x.Fingerprint, y.Fingerprint) })
	return ch
}

// alertCounts counts the open alerts of the communes given, by severity.
func (b *Board) alertCounts(communes map[string]struct{}) map[string]map[hv.Severity]int {
	out := map[string]map[hv.Severity]int{}
	for _, a := range b.alerts {
		c := a.Labels["commune"]
		if _, ok := communes[c]; !ok {
			continue
		}
		if out[c] == nil {
			out[c] = map[hv.Severity]int{}
		}
		out[c][a.Severity]++
	}
	return out
}

// commune computes a commune's state from its devices.
func (b *Board) commune(c string, now time.Time, alerts map[hv.Severity]int) *CommuneState {
	st := &CommuneState{Commune: c, PowerW: map[hv.Fluid]float64{}, Alerts: alerts}
	if st.Alerts == nil {
		st.Alerts = map[hv.Severity]int{}
	}
	horizon := now.Add(-b.staleAfter).UnixMilli()
	for _, d := range b.byCommune[c] {
		st.EPCI = d.EPCI
		st.Time = max(st.Time, d.Time)
		if d.seen < horizon {
			st.Stale++
			continue
		}
		st.Devices++
		if p, ok := d.Values[hv.PowerW]; ok && consumed(d.Fluid) {
			st.PowerW[d.Fluid] += p
		}
	}
	if st.EPCI == "" {
		for _, a := range b.alerts {
			if a.Labels["commune"] == c {
				st.EPCI = a.Labels["epci"]
				break
			}
		}
	}
	return st
}

// consumed reports whether f is a fluid whose power counts in a commune's sums.
func consumed(f hv.Fluid) bool {
	return f == hv.Electricity || f == hv.Gas || f == hv.Heat || f == hv.Water
}

func (c *CommuneState) same(o *CommuneState) bool {
	return c.EPCI == o.EPCI && c.Devices == o.Devices && c.Stale == o.Stale && c.Time == o.Time &&
		maps.Equal(c.PowerW, o.PowerW) && maps.Equal(c.Alerts, o.Alerts)
}

func (c *CommuneState) clone() CommuneState {
	out := *c
	out.PowerW, out.Alerts = maps.Clone(c.PowerW), maps.Clone(c.Alerts)
	return out
}

func (d *DeviceState) clone() DeviceState {
	out := *d
	out.Values, out.times = maps.Clone(d.Values), nil
	return out
}

// Communes returns the current state of the communes match selects (by commune and EPCI code), sorted.
func (b *Board) Communes(match func(commune, epci string) bool) []CommuneState {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	var out []CommuneState
	counts := b.alertCounts(b.allCommunes())
	for c := range b.allCommunes() {
		st := b.commune(c, now, counts[c])
		if match(c, st.EPCI) {
			out = append(out, st.clone())
		}
	}
	slices.SortFunc(out, func(x, y CommuneState) int { return strings.Compare(x.Commune, y.Commune) })
	return out
}

// allCommunes is every commune with a device heard or an open alert.
func (b *Board) allCommunes() map[string]struct{} {
	all := make(map[string]struct{}, len(b.byCommune))
	for c := range b.byCommune {
		all[c] = struct{}{}
	}
	for _, a := range b.alerts {
		if c := a.Labels["commune"]; c != "" {
			all[c] = struct{}{}
		}
	}
	return all
}

// Devices returns the current state of the devices match selects, sorted by id.
func (b *Board) Devices(match func(*DeviceState) bool) []DeviceState {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []DeviceState
	for _, d := range b.devices {
		if match(d) {
			out = append(out, d.clone())
		}
	}
	slices.SortFunc(out, func(x, y DeviceState) int { return strings.Compare(x.Device, y.Device) })
	return out
}

// Alerts returns the open alerts match selects, sorted by fingerprint.
func (b *Board) Alerts(match func(*hv.Alert) bool) []hv.Alert {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []hv.Alert
	for _, a := range b.alerts {
		if match(&a) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y hv.Alert) int { return strings.Compare(x.Fingerprint, y.Fingerprint) })
	return out
}

// Follow feeds the board from the hub until ctx ends. Should the hub drop it for falling behind, it
// subscribes again and marks every device and commune changed: clients then get the whole current state.
func (b *Board) Follow(ctx context.Context, hub *Hub, buffer int) {
	for ctx.Err() == nil {
		sub := hub.Subscribe(Filter{AllEPCIs: true}, buffer)
		b.follow(ctx, sub)
		hub.Unsubscribe(sub)
		if ctx.Err() == nil {
			b.resubscribed.Add(1)
			b.mu.Lock()
			for id, d := range b.devices {
				b.dirtyDev[id] = struct{}{}
				b.dirtyCom[d.Commune] = struct{}{}
			}
			b.mu.Unlock()
		}
	}
}

func (b *Board) follow(ctx context.Context, sub *Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C():
			if !ok {
				return
			}
			switch e.Type {
			case EventReadings:
				b.Observe(e.Readings)
			case EventAlert:
				if e.Alert != nil {
					_ = b.Notify(ctx, []hv.Alert{*e.Alert})
				}
			}
		}
	}
}

// Resubscribed counts the times Follow was dropped by the hub and subscribed again.
func (b *Board) Resubscribed() uint64 { return b.resubscribed.Load() }
