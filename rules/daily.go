package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Updater takes one evaluation of a rule: the Manager.
type Updater interface {
	Update(ctx context.Context, now time.Time, spec RuleSpec, conds []Condition) error
}

var _ Updater = (*Manager)(nil)

// FindFunc finds the conditions holding at now.
type FindFunc func(ctx context.Context, now time.Time) ([]Condition, error)

// Daily is a rule evaluated outside the engine, at most once per civil day of Paris, whose conditions another
// package finds: analyses over months of data, such as the décret BACS losses of efficiency of package
// reporting (which imports this one), that would be wasted every minute. Its conditions go to the Manager as
// the engine's do, under the same lifecycle: an alert is keyed by rule and labels, and resolves at the first
// daily evaluation its condition is absent from.
type Daily struct {
	spec   RuleSpec
	atHour int
	find   FindFunc
	up     Updater

	mu   sync.Mutex
	done string // the Paris date of the last complete evaluation
}

// NewDaily returns the rule: find is called on the first Eval of each Paris day from atHour (0–23) on, and
// what it finds handed to up.
func NewDaily(spec RuleSpec, atHour int, find FindFunc, up Updater) (*Daily, error) {
	if err := spec.validate(); err != nil {
		return nil, fmt.Errorf("daily rule: %w", err)
	}
	if atHour < 0 || atHour > 23 || find == nil || up == nil {
		return nil, fmt.Errorf("daily rule %q: %w: an hour 0-23, a find function and an updater are required",
			spec.Name, hv.ErrInvalid)
	}
	return &Daily{spec: spec, atHour: atHour, find: find, up: up}, nil
}

// Name is the rule's name.
func (d *Daily) Name() string { return d.spec.Name }

// Eval evaluates the rule at now when it has not yet been this Paris day and the day's hour has come; it
// reports whether it evaluated. A find or an update that fails leaves the day to do: the next Eval retries.
func (d *Daily) Eval(ctx context.Context, now time.Time) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := now.In(parisLoc())
	day := p.Format(time.DateOnly)
	if day == d.done || p.Hour() < d.atHour {
		return false, nil
	}
	conds, err := d.find(ctx, now)
	if err != nil {
		return false, fmt.Errorf("rule %s: %w", d.spec.Name, err)
	}
	if err := d.up.Update(ctx, now, d.spec, conds); err != nil {
		return false, err
	}
	d.done = day
	return true, nil
}

// Run calls Eval at once and then every check, with the time clock gives, until ctx ends. It logs the errors:
// it is the edge.
func (d *Daily) Run(ctx context.Context, check time.Duration, clock func() time.Time, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := time.NewTicker(check)
	defer t.Stop()
	for {
		ran, err := d.Eval(ctx, clock())
		switch {
		case err != nil && ctx.Err() != nil:
		case errors.Is(err, hv.ErrUnavailable): // its data is not ready yet (rollups being built)
			log.Info("daily rule waiting for its data", "rule", d.spec.Name, "in", check, "err", err)
		case err != nil:
			log.Warn("daily rule not evaluated; retrying", "rule", d.spec.Name, "in", check, "err", err)
		case ran:
			log.Info("daily rule evaluated", "rule", d.spec.Name)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
