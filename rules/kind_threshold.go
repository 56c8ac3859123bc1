package rules

import (
	"context"
	"fmt"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
)

// KindThreshold names the threshold rule kind.
const KindThreshold = "threshold"

// ThresholdConfig is a metric above (or below) a level, with hysteresis: the condition raises when a reading
// crosses the raise level and clears only when one comes back past the clear level, so a value hovering
// around the level does not flap.
type ThresholdConfig struct {
	Metric hv.Metric `yaml:"metric"` // required: any storable metric (power_w, temperature_c, flow_m3h…)
	Above  *float64  `yaml:"above"`  // raise when a reading is above this (exactly one of above and below)
	Below  *float64  `yaml:"below"`  // raise when a reading is below this
	// Clear is the level a reading must pass back to clear: below Above, or above Below. Default: the raise
	// level itself (no hysteresis).
	Clear *float64 `yaml:"clear"`
	// MaxAge drops a condition whose device has not reported the metric for this long (the silence rule
	// says why); 0 keeps it until a reading clears it.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultThresholdConfig is the zero config: metric and level must be given.
func DefaultThresholdConfig() ThresholdConfig { return ThresholdConfig{} }

// ThresholdRule is the streaming threshold rule.
type ThresholdRule struct {
	*base
	cfg          ThresholdConfig
	above        bool
	raise, clear float64

	mu     sync.Mutex
	states []thresholdState // by target index
}

type thresholdState struct {
	at     int64 // time of the newest reading observed
	value  float64
	active bool
	since  int64 // when the condition raised
}

var (
	_ Rule     = (*ThresholdRule)(nil)
	_ Observer = (*ThresholdRule)(nil)
)

// NewThreshold builds a threshold rule.
func NewThreshold(rc RuleConfig, c ThresholdConfig, reg *registry.Registry) (*ThresholdRule, error) {
	var errs []fieldError
	switch {
	case c.Metric == "":
		errs = append(errs, ferr("metric", "metric is required"))
	case !c.Metric.Known():
		errs = append(errs, ferr("metric", "metric %q is not a canonical metric nor a delta series", c.Metric))
	}
	r := &ThresholdRule{cfg: c}
	switch {
	case (c.Above == nil) == (c.Below == nil):
		errs = append(errs, ferr("above", "give exactly one of above and below"))
	case c.Above != nil:
		r.above, r.raise = true, *c.Above
	default:
		r.raise = *c.Below
	}
	r.clear = r.raise
	if c.Clear != nil {
		r.clear = *c.Clear
		if r.above && r.clear > r.raise || !r.above && r.clear < r.raise {
			word := "at or below above"
			if !r.above {
				word = "at or above below"
			}
			errs = append(errs, ferr("clear", "clear %v must be %s (%v): it is where the condition ends", r.clear, word, r.raise))
		}
	}
	if c.MaxAge < 0 {
		errs = append(errs, ferr("max_age", "max_age must not be negative"))
	}
	b, berrs := newBase(rc, KindThreshold, reg, nil)
	if errs = append(errs, berrs...); len(errs) > 0 {
		return nil, errorsOf(errs)
	}
	r.base = b
	r.states = make([]thresholdState, len(b.targets))
	return r, nil
}

// Observe updates each watched device's state from its readings of the metric; older readings than the
// newest seen are ignored (a backlog must not re-raise a cleared condition).
func (r *ThresholdRule) Observe(rs []hv.Reading) {
	r.observe(&r.mu, rs, []hv.Metric{r.cfg.Metric}, func(idx int, rd *hv.Reading) {
		st := &r.states[idx]
		if rd.Time < st.at {
			return
		}
		st.at, st.value = rd.Time, rd.Value
		switch {
		case !st.active && (r.above && rd.Value > r.raise || !r.above && rd.Value < r.raise):
			st.active, st.since = true, rd.Time
		case st.active && (r.above && rd.Value < r.clear || !r.above && rd.Value > r.clear):
			st.active = false
		}
	})
}

// Eval returns one condition per device whose last readings raised and did not clear.
func (r *ThresholdRule) Eval(_ context.Context, now time.Time, _ Querier) ([]Condition, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Condition
	for i := range r.states {
		st := r.states[i]
		if !st.active || r.cfg.MaxAge > 0 && now.UnixMilli()-st.at > r.cfg.MaxAge.Milliseconds() {
			continue
		}
		t := &r.targets[i]
		word := "au-dessus"
		if !r.above {
			word = "en dessous"
		}
		unit := unitFR(r.cfg.Metric)
		summary := fmt.Sprintf("%s %s%s %s du seuil %s%s (depuis %s)", metricFR(r.cfg.Metric), frNum(st.value, 1), unit,
			word, frNum(r.raise, 1), unit, time.UnixMilli(st.since).In(parisLoc()).Format("02/01 15:04"))
		out = append(out, r.condition(t, st.value, Evidence{Metric: r.cfg.Metric, Device: t.dev.ID,
			From: time.UnixMilli(st.since).UTC(), To: time.UnixMilli(st.at).UTC(), Value: st.value, Threshold: r.raise}, summary))
	}
	return out, nil
}

// metricFR names a metric in French for summaries.
func metricFR(m hv.Metric) string {
	if base, ok := m.DeltaOf(); ok {
		return "Consommation (" + metricFR(base) + ")"
	}
	switch m {
	case hv.EnergyKWh:
		return "Index d'énergie"
	case hv.PowerW:
		return "Puissance"
	case hv.VolumeM3:
		return "Index de volume"
	case hv.FlowM3h:
		return "Débit"
	case hv.HeatKWh:
		return "Index de chaleur"
	case hv.TemperatureC:
		return "Température"
	case hv.LevelPct:
		return "Niveau de gradation"
	case hv.IlluminanceLux:
		return "Éclairement"
	case hv.Presence:
		return "Présence"
	case hv.VoltageV:
		return "Tension"
	case hv.CurrentA:
		return "Courant"
	case hv.PowerFactor:
		return "Facteur de puissance"
	case hv.OperatingHours:
		return "Heures de fonctionnement"
	case hv.LampFailure:
		return "Défaut lampe"
	case hv.DoorOpen:
		return "Porte ouverte"
	}
	return string(m)
}

// unitFR is the unit of a metric as a French text writes it after a number (" °C", " m³/h", "" when none).
func unitFR(m hv.Metric) string {
	switch u := m.Unit(); u {
	case "":
		return ""
	case "Cel":
		return " °C"
	case "m3":
		return " m³"
	case "m3/h":
		return " m³/h"
	case "%":
		return " %"
	default:
		return " " + u
	}
}
