package rules

import (
	"context"
	"fmt"
	"math"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindLeak names the leak rule kind.
const KindLeak = "leak"

// LeakConfig finds water meters whose flow never stops: no zero-flow hour over Window, or a mean night flow
// above a threshold. Flows come from the volume delta series summed by hour (m³ in an hour = m³/h).
//
// "Zero" is relative to the building: a large building's cisterns and pipework let a trickle through all
// night, so an hour counts as zero-flow at or below max(ZeroM3h, ZeroPerM2 × the site's surface). The
// night threshold scales the same way.
type LeakConfig struct {
	Metric hv.Metric `yaml:"metric"` // default volume_m3_delta
	// Window is the span that must hold a zero-flow hour; it ends at the last full hour before now. Default
	// 24h; 0 turns the check off.
	Window    time.Duration `yaml:"window"`
	ZeroM3h   float64       `yaml:"zero_m3h"`    // default 0.01 (10 L in the hour)
	ZeroPerM2 float64       `yaml:"zero_per_m2"` // m³/h per m² of the site; default 2e-5 (0.02 L/h/m²)
	// Night is the span of the night check, evaluated on the last complete one. Default 01:00-05:00.
	Night ClockRange `yaml:"night"`
	// NightFlowM3h and NightFlowPerM2: a mean night flow above max(NightFlowM3h, NightFlowPerM2 × surface)
	// is a leak; both 0 (the default) turn the night check off.
	NightFlowM3h   float64 `yaml:"night_flow_m3h"`
	NightFlowPerM2 float64 `yaml:"night_flow_per_m2"`
	MinCoverage    float64 `yaml:"min_coverage"` // share of the hours that must have data; default 0.75
}

// DefaultLeakConfig checks for a zero-flow hour in 24 h, the night check off.
func DefaultLeakConfig() LeakConfig {
	return LeakConfig{Metric: hv.VolumeM3.Delta(), Window: 24 * time.Hour, ZeroM3h: 0.01, ZeroPerM2: 2e-5,
		Night: ClockRange{From: 60, To: 300}, MinCoverage: 0.75}
}

// LeakRule is the leak rule, a window rule.
type LeakRule struct {
	*base
	cfg LeakConfig
}

var _ Rule = (*LeakRule)(nil)

// NewLeak builds a leak rule. It watches water meters only, whatever the scope.
func NewLeak(rc RuleConfig, c LeakConfig, reg *registry.Registry) (*LeakRule, error) {
	var errs []fieldError
	if _, ok := c.Metric.DeltaOf(); !ok {
		errs = append(errs, ferr("metric", "metric %q is not the delta series of an index (volume_m3_delta)", c.Metric))
	}
	if c.Window != 0 && (c.Window < time.Hour || c.Window%time.Hour != 0) {
		errs = append(errs, ferr("window", "window must be whole hours (24h), or 0 to turn the check off"))
	}
	if c.ZeroM3h < 0 || c.ZeroPerM2 < 0 || c.NightFlowM3h < 0 || c.NightFlowPerM2 < 0 {
		errs = append(errs, ferr("zero_m3h", "flows must not be negative"))
	}
	if c.MinCoverage <= 0 || c.MinCoverage > 1 {
		errs = append(errs, ferr("min_coverage", "min_coverage must be in (0, 1]"))
	}
	if c.Window == 0 && c.NightFlowM3h == 0 && c.NightFlowPerM2 == 0 {
		errs = append(errs, ferr("window", "both checks are off: set window or night_flow_m3h"))
	}
	if c.Night.From == c.Night.To {
		errs = append(errs, ferr("night", "night must be a clock range HH:MM-HH:MM"))
	}
	b, berrs := newBase(rc, KindLeak, reg, func(d *hv.Device, _ *hv.Site) bool {
		return d.Kind == hv.DeviceMeter && d.Fluid == hv.Water
	})
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	if len(b.filter.Fluids) == 0 {
		b.filter.Fluids = []hv.Fluid{hv.Water}
	}
	return &LeakRule{base: b, cfg: c}, nil
}

// Eval checks the Window ending at the last full hour before now, and the last complete night.
func (r *LeakRule) Eval(ctx context.Context, now time.Time, q Querier) ([]Condition, error) {
	to := now.Truncate(time.Hour) // whole-hour offsets: an hour of UTC is an hour of Paris
	from := to.Add(-r.cfg.Window)
	nightFrom, nightTo := r.cfg.Night.lastOccurrence(now)
	nightOn := r.cfg.NightFlowM3h > 0 || r.cfg.NightFlowPerM2 > 0
	qFrom, qTo := from, to
	if r.cfg.Window == 0 {
		qFrom, qTo = nightFrom, nightTo
	} else if nightOn {
		qFrom, qTo = earliest(from, nightFrom), latest(to, nightTo)
	}
	ss, err := r.query(ctx, q, r.cfg.Metric, qFrom, qTo, time.Hour, hv.AggSum)
	if err != nil {
		return nil, err
	}
	var out []Condition
	for _, s := range ss {
		t := s.t
		if r.cfg.Window > 0 {
			zero := math.Max(r.cfg.ZeroM3h, r.cfg.ZeroPerM2*t.site.SurfaceM2)
			lo, n := math.Inf(1), 0
			for _, p := range s.points {
				if p.Time >= from.UnixMilli() && p.Time < to.UnixMilli() {
					lo = math.Min(lo, p.Value)
					n++
				}
			}
			hours := int(r.cfg.Window / time.Hour)
			if float64(n) >= r.cfg.MinCoverage*float64(hours) && lo > zero {
				summary := fmt.Sprintf("Fuite probable : le débit n'est pas descendu sous %s m³/h en %s (seuil de débit nul %s m³/h)",
					frNum(lo, 3), frDuration(r.cfg.Window), frNum(zero, 3))
				out = append(out, r.condition(t, lo, Evidence{Metric: r.cfg.Metric, Device: t.dev.ID, From: from.UTC(), To: to.UTC(),
					Value: lo, Threshold: zero}, summary))
				continue
			}
		}
		if nightOn {
			limit := math.Max(r.cfg.NightFlowM3h, r.cfg.NightFlowPerM2*t.site.SurfaceM2)
			sum, n := sumIn(s.points, nightFrom, nightTo)
			hours := nightTo.Sub(nightFrom).Hours()
			if float64(n) >= r.cfg.MinCoverage*hours && n > 0 {
				flow := sum / float64(n)
				if flow > limit {
					summary := fmt.Sprintf("Fuite probable : débit nocturne %s m³/h (%s, seuil %s m³/h)",
						frNum(flow, 3), r.cfg.Night, frNum(limit, 3))
					out = append(out, r.condition(t, flow, Evidence{Metric: r.cfg.Metric, Device: t.dev.ID, From: nightFrom.UTC(),
						To: nightTo.UTC(), Value: flow, Threshold: limit}, summary))
				}
			}
		}
	}
	return out, nil
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
