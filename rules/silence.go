package rules

import (
	"fmt"
	"maps"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Silence mutes the alerts it matches for a period (a maintenance window, a known outage): they keep their
// lifecycle and stay visible, marked silenced, but no firing notification goes out while it is active. Like
// an Alertmanager silence, it is a set of equality matchers, every one of which must hold.
type Silence struct {
	ID string `json:"id"` // assigned by AddSilence: the store's row id in decimal
	// Matchers are label equalities, e.g. {"site": "mairie-laon"} or {"epci": "200071892", "rule": "leak"}.
	// Two pseudo-labels match the alert itself rather than its labels: "rule" (the rule name) and "severity".
	Matchers map[string]string `json:"matchers"`
	From     time.Time         `json:"from"`
	To       time.Time         `json:"to"`
	By       string            `json:"by"`
	Comment  string            `json:"comment,omitempty"`
}

// Active reports whether the silence mutes alerts at now: From ≤ now < To.
func (s *Silence) Active(now time.Time) bool { return !now.Before(s.From) && now.Before(s.To) }

// Matches reports whether every matcher holds for an alert of rule with severity and labels.
func (s *Silence) Matches(rule string, severity hv.Severity, labels map[string]string) bool {
	for k, v := range s.Matchers {
		var got string
		switch k {
		case "rule":
			got = rule
		case "severity":
			got = string(severity)
		default:
			got = labels[k]
		}
		if got != v {
			return false
		}
	}
	return true
}

// validate checks a silence about to be added at now and fills its defaults (From = now).
func (s *Silence) validate(now time.Time) error {
	if len(s.Matchers) == 0 {
		return fmt.Errorf("silence: no matcher (a silence must name what it mutes, e.g. site=…): %w", hv.ErrInvalid)
	}
	for k, v := range s.Matchers {
		if k == "" || v == "" {
			return fmt.Errorf("silence: matcher %q=%q: empty name or value: %w", k, v, hv.ErrInvalid)
		}
	}
	if s.By == "" {
		return fmt.Errorf("silence: no author (by): %w", hv.ErrInvalid)
	}
	if s.From.IsZero() {
		s.From = now
	}
	if !s.To.After(s.From) {
		return fmt.Errorf("silence: end %s not after start %s: %w", s.To.Format(time.RFC3339), s.From.Format(time.RFC3339), hv.ErrInvalid)
	}
	if !s.To.After(now) {
		return fmt.Errorf("silence: end %s already past: %w", s.To.Format(time.RFC3339), hv.ErrInvalid)
	}
	s.Matchers = maps.Clone(s.Matchers)
	return nil
}
