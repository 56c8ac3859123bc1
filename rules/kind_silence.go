package rules

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/useda02/hyperviseur/registry"
)

// KindSilence names the silence rule kind.
const KindSilence = "silence"

// SilenceConfig finds devices not heard for Factor × their expected reporting interval (the registry's
// interval). When every watched device of a site (a building, a lighting cabinet) is silent, the site gets
// one condition, labelled with the site and no device, instead of one per device: a cut supply or a dead
// gateway is one thing to fix.
type SilenceConfig struct {
	Factor float64 `yaml:"factor"` // silent after factor × interval; default 3
	// MinSilence is the shortest silence reported, whatever the interval: a 5-minute controller missing two
	// reports is noise, not an outage. Default 30m.
	MinSilence time.Duration `yaml:"min_silence"`
	// DefaultInterval stands for the interval of devices registered without one. Default 1h.
	DefaultInterval time.Duration `yaml:"default_interval"`
	// NeverSeen counts devices never heard (since the service started) as silent. Default false: a device
	// not yet commissioned is not an outage, and after a restart the live state fills within an interval.
	NeverSeen bool `yaml:"never_seen"`
	// CollapseMin is the number of watched devices a site needs for its silence to collapse into one
	// condition. Default 2 (a one-device site keeps its device condition, which names the site anyway).
	CollapseMin int `yaml:"collapse_min"`
}

// DefaultSilenceConfig is 3 intervals, at least 30 minutes, collapsing sites of two devices or more.
func DefaultSilenceConfig() SilenceConfig {
	return SilenceConfig{Factor: 3, MinSilence: 30 * time.Minute, DefaultInterval: time.Hour, CollapseMin: 2}
}

// SilenceRule is the silence rule. It reads the live last-seen times, not the store: without them (nil
// lastSeen) it finds nothing.
type SilenceRule struct {
	*base
	cfg      SilenceConfig
	lastSeen func(string) int64
	limits   []int64        // ms, by target
	perSite  map[string]int // watched devices per site
}

var _ Rule = (*SilenceRule)(nil)

// NewSilence builds a silence rule; lastSeen is live.State.LastSeen.
func NewSilence(rc RuleConfig, c SilenceConfig, reg *registry.Registry, lastSeen func(string) int64) (*SilenceRule, error) {
	var errs []fieldError
	if !(c.Factor >= 1) {
		errs = append(errs, ferr("factor", "factor must be at least 1 (a device is late only after its interval)"))
	}
	if c.MinSilence < 0 {
		errs = append(errs, ferr("min_silence", "min_silence must not be negative"))
	}
	if c.DefaultInterval <= 0 {
		errs = append(errs, ferr("default_interval", "default_interval must be positive"))
	}
	if c.CollapseMin < 1 {
		errs = append(errs, ferr("collapse_min", "collapse_min must be at least 1"))
	}
	b, berrs := newBase(rc, KindSilence, reg, nil)
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r := &SilenceRule{base: b, cfg: c, lastSeen: lastSeen, limits: make([]int64, len(b.targets)), perSite: map[string]int{}}
	for i, t := range b.targets {
		every := t.dev.Interval
		if every <= 0 {
			every = c.DefaultInterval
		}
		r.limits[i] = max(time.Duration(c.Factor*float64(every)), c.MinSilence).Milliseconds()
		r.perSite[t.site.ID]++
	}
	return r, nil
}

// Eval returns the silent devices, and the wholly silent sites as one condition each.
func (r *SilenceRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	if r.lastSeen == nil {
		return nil, nil
	}
	nowMs := now.UnixMilli()
	type silent struct {
		idx  int
		last int64
	}
	bySite := map[string][]silent{}
	var order []string // sites in target order, for a stable output
	for i := range r.targets {
		t := &r.targets[i]
		last := r.lastSeen(t.dev.ID)
		if last == 0 && !r.cfg.NeverSeen || last != 0 && nowMs-last <= r.limits[i] {
			continue
		}
		if _, ok := bySite[t.site.ID]; !ok {
			order = append(order, t.site.ID)
		}
		bySite[t.site.ID] = append(bySite[t.site.ID], silent{i, last})
	}
	var out []Condition
	for _, site := range order {
		ss := bySite[site]
		if n := r.perSite[site]; len(ss) == n && n >= r.cfg.CollapseMin {
			t := &r.targets[ss[0].idx]
			var last, limit int64
			for _, s := range ss {
				last = max(last, s.last)
				if limit == 0 || r.limits[s.idx] < limit {
					limit = r.limits[s.idx]
				}
			}
			labels := maps.Clone(t.labels)
			delete(labels, "device")
			delete(labels, "fluid")
			ev := Evidence{From: msToTime(last), To: now.UTC(), Threshold: float64(limit) / 1000}
			var summary string
			if last == 0 {
				summary = fmt.Sprintf("Site muet : aucun des %d appareils de « %s » n'a jamais émis", n, t.site.Name)
			} else {
				ev.Value = float64(nowMs-last) / 1000
				summary = fmt.Sprintf("Site muet : aucun des %d appareils de « %s » n'a émis depuis %s (dernier message le %s)",
					n, t.site.Name, frDuration(now.Sub(time.UnixMilli(last))), time.UnixMilli(last).In(parisLoc()).Format("02/01 à 15:04"))
			}
			out = append(out, r.conditionLabels(labels, t, ev.Value, ev, summary))
			continue
		}
		for _, s := range ss {
			t := &r.targets[s.idx]
			every := t.dev.Interval
			if every <= 0 {
				every = r.cfg.DefaultInterval
			}
			ev := Evidence{Device: t.dev.ID, From: msToTime(s.last), To: now.UTC(), Threshold: float64(r.limits[s.idx]) / 1000}
			var summary string
			if s.last == 0 {
				summary = fmt.Sprintf("Appareil jamais entendu (attendu toutes les %s)", frDuration(every))
			} else {
				ev.Value = float64(nowMs-s.last) / 1000
				summary = fmt.Sprintf("Appareil muet depuis %s (attendu toutes les %s, dernier message le %s)",
					frDuration(now.Sub(time.UnixMilli(s.last))), frDuration(every), time.UnixMilli(s.last).In(parisLoc()).Format("02/01 à 15:04"))
			}
			out = append(out, r.condition(t, ev.Value, ev, summary))
		}
	}
	return out, nil
}

// msTime is a Unix ms time in UTC, the zero time for 0.
func msToTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
