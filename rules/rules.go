// Package rules will turn the reading stream into alerts (issue: rules engine). This room holds the contract
// the engine is built on, so ingest and the dashboard can already depend on it: a rule takes time as an
// argument, never reads the clock, so tests run on simulated time (Prometheus rules/alerting.go).
package rules

import (
	"context"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Rule evaluates one condition at now and returns the alerts it holds active.
type Rule interface {
	Name() string
	Eval(ctx context.Context, now time.Time, q Querier) ([]hv.Alert, error)
}

// Querier is the read side of the store a rule needs.
type Querier interface {
	Query(ctx context.Context, q hv.Query) ([]hv.Series, error)
}
