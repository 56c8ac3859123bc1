package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	hv "github.com/useda02/hyperviseur"
)

// Route sends the alerts it matches to one notifier: by severity (none listed: all) and by label values
// (each listed label must have one of its values; e.g. epci: [200043495] for an EPCI's pilot).
type Route struct {
	Name       string
	Severities []hv.Severity
	Labels     map[string][]string
	Notifier   hv.Notifier
}

func (r Route) match(a hv.Alert) bool {
	if len(r.Severities) > 0 && !slices.Contains(r.Severities, a.Severity) {
		return false
	}
	for k, vs := range r.Labels {
		if !slices.Contains(vs, a.Labels[k]) {
			return false
		}
	}
	return true
}

// Router hands each route the alerts it matches; an alert may go to several routes, or none.
type Router struct{ routes []Route }

var _ hv.Notifier = (*Router)(nil)

// NewRouter returns a router over routes, each of which must have a notifier.
func NewRouter(routes ...Route) (*Router, error) {
	for i, r := range routes {
		if r.Notifier == nil {
			return nil, fmt.Errorf("notify route %d (%s): %w: no notifier", i, r.Name, hv.ErrInvalid)
		}
	}
	return &Router{routes: routes}, nil
}

// Notify delivers to every route its share, all routes tried; the error joins the routes' errors.
func (r *Router) Notify(ctx context.Context, alerts []hv.Alert) error {
	var errs []error
	for _, rt := range r.routes {
		var mine []hv.Alert
		for _, a := range alerts {
			if rt.match(a) {
				mine = append(mine, a)
			}
		}
		if len(mine) == 0 {
			continue
		}
		if err := rt.Notifier.Notify(ctx, mine); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", rt.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Queue decouples a notifier from its caller: Notify only enqueues, Run delivers in order. The queue is
// bounded; when it is full the batch is dropped, counted and logged, so a dead receiver never holds up the
// rules engine (the alerts stay in the API and the store).
type Queue struct {
	n       hv.Notifier
	ch      chan []hv.Alert
	log     *slog.Logger
	dropped atomic.Uint64
	failed  atomic.Uint64
}

var _ hv.Notifier = (*Queue)(nil)

// NewQueue returns a queue of size batches in front of n.
func NewQueue(n hv.Notifier, size int, log *slog.Logger) *Queue {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Queue{n: n, ch: make(chan []hv.Alert, max(1, size)), log: log}
}

// Notify enqueues a copy of alerts without blocking.
func (q *Queue) Notify(_ context.Context, alerts []hv.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	select {
	case q.ch <- slices.Clone(alerts):
		return nil
	default:
		q.dropped.Add(uint64(len(alerts)))
		q.log.Warn("notification queue full: alerts not delivered", "alerts", len(alerts), "dropped_total", q.dropped.Load())
		return fmt.Errorf("notify: %w: queue full, %d alerts dropped", hv.ErrUnavailable, len(alerts))
	}
}

// Run delivers queued batches until ctx ends; a batch the notifier fails on is logged and counted.
func (q *Queue) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-q.ch:
			if err := q.n.Notify(ctx, b); err != nil {
				q.failed.Add(uint64(len(b)))
				q.log.Error("alert notification failed", "alerts", len(b), "err", err)
			}
		}
	}
}

// Dropped and Failed count the alerts not delivered: queue full, notifier error.
func (q *Queue) Dropped() uint64 { return q.dropped.Load() }
func (q *Queue) Failed() uint64  { return q.failed.Load() }
