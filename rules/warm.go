package rules

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Warmer is a streaming rule that can rebuild its state from the store after a restart, as Prometheus
// rebuilds rule state from its TSDB: it names the metrics it observes and how far back its state reaches.
// The alert lifecycle (pending since when, firing, acknowledged) is the Manager's and persisted; this is only
// what the rule itself remembers of the readings.
type Warmer interface {
	Observer
	Warmup() (metrics []hv.Metric, lookback time.Duration)
}

// Warmup implementations: the metrics each streaming kind observes and the span its state covers.

func (r *CounterRule) Warmup() ([]hv.Metric, time.Duration) {
	return []hv.Metric{hv.CounterEvent}, r.cfg.Hold
}

// A threshold's state is its last reading's side of the hysteresis: a day back finds it for any device that
// reports at least daily; max_age bounds it when set.
func (r *ThresholdRule) Warmup() ([]hv.Metric, time.Duration) {
	d := 24 * time.Hour
	if r.cfg.MaxAge > 0 {
		d = r.cfg.MaxAge
	}
	return []hv.Metric{r.cfg.Metric}, d
}

func (r *PeakRule) Warmup() ([]hv.Metric, time.Duration) {
	return []hv.Metric{hv.PowerW}, max(r.cfg.Duration, r.cfg.TrendWindow, r.cfg.Stale, time.Hour)
}

func (r *DayBurnerRule) Warmup() ([]hv.Metric, time.Duration) {
	return []hv.Metric{hv.PowerW}, max(r.cfg.Stale, time.Hour)
}

func (r *LampFailureRule) Warmup() ([]hv.Metric, time.Duration) {
	return []hv.Metric{hv.PowerW, hv.LevelPct, hv.LampFailure}, max(r.cfg.Stale, time.Hour)
}

func (r *DimmingFailureRule) Warmup() ([]hv.Metric, time.Duration) {
	return []hv.Metric{hv.LevelPct}, max(r.cfg.AckWindow, r.cfg.Stale, time.Hour)
}

var _ = []Warmer{(*CounterRule)(nil), (*ThresholdRule)(nil), (*PeakRule)(nil), (*DayBurnerRule)(nil),
	(*LampFailureRule)(nil), (*DimmingFailureRule)(nil)}

// Warm replays, into every streaming rule, the stored readings its state needs up to now, in time order: call
// it once at start, before ingest feeds new readings. It returns the readings replayed, summed over the rules.
func (e *Engine) Warm(ctx context.Context, now time.Time) (int, error) {
	e.mu.RLock()
	set := e.set
	e.mu.RUnlock()
	total := 0
	for _, o := range set.Observers() {
		w, ok := o.(Warmer)
		if !ok {
			continue
		}
		metrics, lookback := w.Warmup()
		var rs []hv.Reading
		for _, m := range metrics {
			series, err := e.q.Query(ctx, hv.Query{Metric: m, From: now.Add(-lookback).UnixMilli(), To: now.UnixMilli() + 1})
			if err != nil {
				return total, fmt.Errorf("rules warm-up: %s: %w", m, err)
			}
			for _, s := range series {
				for _, p := range s.Points {
					rs = append(rs, hv.Reading{Device: s.Device, Metric: s.Metric, Value: p.Value, Time: p.Time,
						Site: s.Site, Commune: s.Commune, EPCI: s.EPCI, Fluid: s.Fluid})
				}
			}
		}
		slices.SortStableFunc(rs, func(a, b hv.Reading) int { return cmp.Compare(a.Time, b.Time) })
		const batch = 5000
		for i := 0; i < len(rs); i += batch {
			w.Observe(rs[i:min(i+batch, len(rs))])
		}
		total += len(rs)
	}
	return total, nil
}
