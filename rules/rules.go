// Package rules turns the reading stream into the few alerts a technician must act on, as Prometheus
// alerting does for metrics: rules find conditions (rule kinds, one file each), the Manager (lifecycle.go)
// turns conditions into alerts with a lifecycle (pending → firing → resolved, acknowledged, silenced,
// suppressed by topology), persisted so a restart neither re-fires nor loses `for` progress.
//
// Time is always an argument: no rule and no part of the lifecycle reads the clock, so every test runs on
// simulated time (Prometheus rules/alerting.go works the same way).
package rules

import (
	"context"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Querier is the read side of the store a window rule needs.
type Querier interface {
	Query(ctx context.Context, q hv.Query) ([]hv.Series, error)
}

// Condition is one thing a rule finds wrong at an evaluation: one per label set (a device, a site, a
// commune). The same labels at the next evaluation are the same condition still holding; a condition
// absent from an evaluation has cleared.
type Condition struct {
	// Labels identify what the condition is about: at least "device" or "site", and the registry's
	// "site", "commune", "epci", "fluid" when known (scoping and routing use them).
	Labels   map[string]string
	Value    float64 // the observed value (the window's consumption, the power, the silence in seconds…)
	Summary  string  // one line in French, for the technician: "Fuite probable : débit nocturne 0,42 m³/h"
	Evidence Evidence
}

// Evidence is what a technician needs to check an alert: the series and window that raised it and the
// reference it was compared with.
type Evidence struct {
	Metric    hv.Metric `json:"metric,omitempty"`
	Device    string    `json:"device,omitempty"`
	From      time.Time `json:"from,omitzero"`
	To        time.Time `json:"to,omitzero"`
	Value     float64   `json:"value"`
	Baseline  float64   `json:"baseline,omitempty"`  // the reference compared with, when there is one
	Threshold float64   `json:"threshold,omitempty"` // the level crossed
	// Detail lists the figures of an alert judged over several periods (a BACS finding's months), in French.
	Detail string `json:"detail,omitempty"`
}

// Rule finds the conditions holding at now. Window rules query the store; streaming rules (Observer) work
// from the readings they observed and may ignore q.
type Rule interface {
	Name() string
	Eval(ctx context.Context, now time.Time, q Querier) ([]Condition, error)
}

// Observer is a rule fed each reading as ingest stores it: threshold, counter and lighting rules. Observe
// must be cheap (it runs on the ingest path) and safe for concurrent use with Eval.
type Observer interface {
	Observe(rs []hv.Reading)
}
