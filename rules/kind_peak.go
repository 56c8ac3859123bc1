package rules

import (
	"context"
	"fmt"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindPeak names the peak rule kind.
const KindPeak = "peak"

// PeakConfig finds electric power above Share of the site's subscribed power (subscribed_kva × 1000 ×
// cos φ) for at least Duration: past it the supplier bills an overrun or the breaker trips. With Early it
// also raises before the limit is reached, when the trend of the 10-minute mean power (least squares over
// TrendWindow) reaches the limit within Horizon. It watches the power_w of electricity meters and lighting
// controllers whose site has a subscribed power.
//
// With Aggregate (commune or epci), simultaneous peaks of AggregateMin sites or more in one commune (EPCI)
// become one condition labelled with the commune (EPCI): a cold snap is one thing, not twenty.
type PeakConfig struct {
	Share        float64       `yaml:"share"`         // of the subscribed power; default 0.9
	CosPhi       float64       `yaml:"cos_phi"`       // default 1
	Duration     time.Duration `yaml:"duration"`      // default 10m; 0: one reading above is enough
	Early        bool          `yaml:"early"`         // default true
	TrendWindow  time.Duration `yaml:"trend_window"`  // default 30m
	Horizon      time.Duration `yaml:"horizon"`       // default 10m
	Stale        time.Duration `yaml:"stale"`         // a device silent this long is not judged; default 30m
	Aggregate    string        `yaml:"aggregate"`     // "", commune or epci
	AggregateMin int           `yaml:"aggregate_min"` // default 2
}

// DefaultPeakConfig is 90 % of the subscribed power for 10 minutes, with the early trend.
func DefaultPeakConfig() PeakConfig {
	return PeakConfig{Share: 0.9, CosPhi: 1, Duration: 10 * time.Minute, Early: true, TrendWindow: 30 * time.Minute,
		Horizon: 10 * time.Minute, Stale: 30 * time.Minute, AggregateMin: 2}
}

// PeakRule is the streaming peak rule.
type PeakRule struct {
	*base
	cfg    PeakConfig
	limits []float64 // W, by target

	mu     sync.Mutex
	states []peakState
}

// peakSamples bounds the samples kept per device: TrendWindow of 1-minute readings at most.
const peakSamples = 64

type peakSample struct {
	t int64
	p float64
}

type peakState struct {
	ring       [peakSamples]peakSample
	head, n    int   // ring[head-1] is the newest
	aboveSince int64 // first reading of the current run above the limit; 0 when below
}

func (s *peakState) newest() (peakSample, bool) {
	if s.n == 0 {
		return peakSample{}, false
	}
	return s.ring[(s.head-1+peakSamples)%peakSamples], true
}

// each calls f on the samples with time in (since, ∞), newest first.
func (s *peakState) each(since int64, f func(peakSample)) {
	for i := 0; i < s.n; i++ {
		x := s.ring[(s.head-1-i+2*peakSamples)%peakSamples]
		if x.t <= since {
			return
		}
		f(x)
	}
}

var (
	_ Rule     = (*PeakRule)(nil)
	_ Observer = (*PeakRule)(nil)
)

// NewPeak builds a peak rule.
func NewPeak(rc RuleConfig, c PeakConfig, reg *registry.Registry) (*PeakRule, error) {
	var errs []fieldError
	if !(c.Share > 0) || c.Share > 2 {
		errs = append(errs, ferr("share", "share must be in (0, 2]"))
	}
	if !(c.CosPhi > 0) || c.CosPhi > 1 {
		errs = append(errs, ferr("cos_phi", "cos_phi must be in (0, 1]"))
	}
	if c.Duration < 0 || c.TrendWindow < 0 || c.Horizon < 0 {
		errs = append(errs, ferr("duration", "durations must not be negative"))
	}
	if c.Early && (c.TrendWindow <= 0 || c.Horizon <= 0) {
		errs = append(errs, ferr("trend_window", "early needs a positive trend_window and horizon"))
	}
	if c.Stale <= 0 {
		errs = append(errs, ferr("stale", "stale must be positive"))
	}
	switch c.Aggregate {
	case "", "commune", "epci":
	default:
		errs = append(errs, ferr("aggregate", "aggregate %q is not one of commune, epci (or empty)", c.Aggregate))
	}
	if c.AggregateMin < 2 {
		errs = append(errs, ferr("aggregate_min", "aggregate_min must be at least 2"))
	}
	b, berrs := newBase(rc, KindPeak, reg, func(d *hv.Device, s *hv.Site) bool {
		return s.SubscribedKVA > 0 && (d.Kind == hv.DeviceMeter && d.Fluid == hv.Electricity || d.Kind == hv.DeviceLightingController)
	})
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r := &PeakRule{base: b, cfg: c, limits: make([]float64, len(b.targets)), states: make([]peakState, len(b.targets))}
	for i, t := range b.targets {
		r.limits[i] = c.Share * t.site.SubscribedKVA * 1000 * c.CosPhi
	}
	return r, nil
}

// Observe keeps the recent power readings of watched devices.
func (r *PeakRule) Observe(rs []hv.Reading) {
	r.observe(&r.mu, rs, []hv.Metric{hv.PowerW}, func(idx int, rd *hv.Reading) {
		st := &r.states[idx]
		if last, ok := st.newest(); ok && rd.Time <= last.t {
			return
		}
		st.ring[st.head] = peakSample{rd.Time, rd.Value}
		st.head = (st.head + 1) % peakSamples
		st.n = min(st.n+1, peakSamples)
		switch {
		case rd.Value <= r.limits[idx]:
			st.aboveSince = 0
		case st.aboveSince == 0:
			st.aboveSince = rd.Time
		}
	})
}

// trend is the 10-minute mean power at the newest sample and its projection Horizon ahead, from the least
// squares slope of the samples over TrendWindow; ok is false with fewer than 3 samples.
func (r *PeakRule) trend(st *peakState, last peakSample) (mean, projected float64, ok bool) {
	var sum float64
	var n int
	st.each(last.t-(10*time.Minute).Milliseconds(), func(s peakSample) { sum += s.p; n++ })
	mean = sum / float64(n)
	var sx, sy, sxx, sxy float64
	var m int
	st.each(last.t-r.cfg.TrendWindow.Milliseconds()-1, func(s peakSample) {
		x := float64(s.t-last.t) / 3.6e6 // hours before the newest
		sx, sy, sxx, sxy = sx+x, sy+s.p, sxx+x*x, sxy+x*s.p
		m++
	})
	if m < 3 {
		return mean, mean, false
	}
	den := float64(m)*sxx - sx*sx
	if den == 0 {
		return mean, mean, false
	}
	slope := (float64(m)*sxy - sx*sy) / den // W per hour
	return mean, mean + slope*r.cfg.Horizon.Hours(), slope > 0
}

// Eval returns the devices above their limit for Duration, and those whose trend reaches it within Horizon.
func (r *PeakRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type hit struct {
		idx  int
		cond Condition
	}
	var hits []hit
	for i := range r.states {
		st := &r.states[i]
		last, ok := st.newest()
		if !ok || now.UnixMilli()-last.t > r.cfg.Stale.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		limit, subscribedW := r.limits[i], t.site.SubscribedKVA*1000*r.cfg.CosPhi
		ev := Evidence{Metric: hv.PowerW, Device: t.dev.ID, To: time.UnixMilli(last.t).UTC(), Value: last.p, Baseline: subscribedW, Threshold: limit}
		switch {
		case st.aboveSince != 0 && last.t-st.aboveSince >= r.cfg.Duration.Milliseconds():
			ev.From = time.UnixMilli(st.aboveSince).UTC()
			summary := fmt.Sprintf("Dépassement de puissance : %s kW depuis %s, %s %% de la puissance souscrite (%s kVA ; seuil %s %%)",
				frNum(last.p/1000, 1), time.UnixMilli(st.aboveSince).In(parisLoc()).Format("15:04"), frNum(100*last.p/subscribedW, 0),
				frNum(t.site.SubscribedKVA, 0), frNum(100*r.cfg.Share, 0))
			hits = append(hits, hit{i, r.condition(t, last.p, ev, summary)})
		case r.cfg.Early:
			mean, projected, rising := r.trend(st, last)
			if !rising || projected <= limit {
				continue
			}
			ev.From = time.UnixMilli(last.t).Add(-r.cfg.TrendWindow).UTC()
			ev.Value = mean
			summary := fmt.Sprintf("Risque de dépassement : %s kW en hausse, %s kW prévus dans %s (seuil %s kW, %s %% de %s kVA)",
				frNum(mean/1000, 1), frNum(projected/1000, 1), frDuration(r.cfg.Horizon), frNum(limit/1000, 1),
				frNum(100*r.cfg.Share, 0), frNum(t.site.SubscribedKVA, 0))
			hits = append(hits, hit{i, r.condition(t, mean, ev, summary)})
		}
	}
	if r.cfg.Aggregate == "" {
		out := make([]Condition, len(hits))
		for i, h := range hits {
			out[i] = h.cond
		}
		return out, nil
	}
	// Group by commune (EPCI), in first-hit order; groups of AggregateMin or more become one condition.
	groups := map[string][]hit{}
	var order []string
	for _, h := range hits {
		site := r.targets[h.idx].site
		key := site.Commune
		if r.cfg.Aggregate == "epci" {
			key = site.EPCI
		}
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], h)
	}
	var out []Condition
	for _, key := range order {
		g := groups[key]
		if len(g) < r.cfg.AggregateMin {
			for _, h := range g {
				out = append(out, h.cond)
			}
			continue
		}
		t := &r.targets[g[0].idx]
		var ev Evidence
		ev.Metric = hv.PowerW
		sites := map[string]bool{}
		for _, h := range g {
			e := h.cond.Evidence
			ev.Value += e.Value
			ev.Baseline += e.Baseline
			ev.Threshold += e.Threshold
			if ev.From.IsZero() || e.From.Before(ev.From) {
				ev.From = e.From
			}
			if e.To.After(ev.To) {
				ev.To = e.To
			}
			sites[r.targets[h.idx].site.ID] = true
		}
		labels := map[string]string{"epci": t.site.EPCI}
		where := "de l'EPCI " + t.site.EPCI
		if e, ok := r.reg.Territory().EPCI(t.site.EPCI); ok {
			where = "de " + e.Name
		}
		if r.cfg.Aggregate == "commune" {
			labels["commune"] = t.site.Commune
			where = "à " + r.communeName(t.site.Commune)
		}
		summary := fmt.Sprintf("Pointes simultanées sur %d sites %s : %s kW au total (seuils cumulés %s kW)",
			len(sites), where, frNum(ev.Value/1000, 1), frNum(ev.Threshold/1000, 1))
		out = append(out, r.conditionLabels(labels, nil, ev.Value, ev, summary))
	}
	return out, nil
}
