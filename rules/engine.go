package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	hv "github.com/useda02/hyperviseur"
)

// Engine runs a rule set: streaming rules observe every stored reading (Observe, on the ingest path), every
// rule is evaluated on a schedule aligned to its interval (Run, or EvalAll on simulated time), and the
// Manager turns what they find into alerts. Reload swaps in a new set and keeps the running one when the new
// one is invalid, with the error kept for the API.
type Engine struct {
	mgr   *Manager
	q     Querier
	load  func() (*RuleSet, error)
	every time.Duration
	log   *slog.Logger
	m     *engineMetrics

	mu        sync.RWMutex // guards set, health and the reload state
	set       *RuleSet
	health    map[string]*ruleHealth
	reloadAt  time.Time
	reloadErr error

	evalMu sync.Mutex // one evaluation pass at a time (Run's tick, an API-triggered reload's catch-up)
}

// RuleStatus is one rule's health for the API (GET /api/v1/rules).
type RuleStatus struct {
	Name          string        `json:"name"`
	Severity      hv.Severity   `json:"severity"`
	For           string        `json:"for,omitempty"`
	KeepFiringFor string        `json:"keep_firing_for,omitempty"`
	Health        string        `json:"health"` // ok | error | unknown (not evaluated yet) | inactive
	LastError     string        `json:"last_error,omitempty"`
	LastEval      time.Time     `json:"last_eval,omitzero"`
	EvalDuration  time.Duration `json:"eval_duration_ns,omitempty"`
	Conditions    int           `json:"conditions"` // found at the last evaluation
}

// ReloadStatus is the outcome of the last reload.
type ReloadStatus struct {
	At    time.Time `json:"at,omitzero"`
	Error string    `json:"error,omitempty"` // the new set was refused: the previous one keeps running
}

type ruleHealth struct {
	lastEval   time.Time
	duration   time.Duration
	err        error
	conditions int
}

// EngineConfig tunes the engine.
type EngineConfig struct {
	// Every is the evaluation interval of every rule (default 1 min). Passes are aligned on multiples of it,
	// so window rules see the same complete windows whichever instance evaluates them.
	Every time.Duration
	// Registerer receives the per-rule metrics; nil: none.
	Registerer prometheus.Registerer
}

// NewEngine returns an engine running set; load gives the set Reload swaps in (nil: no reload).
func NewEngine(cfg EngineConfig, set *RuleSet, load func() (*RuleSet, error), mgr *Manager, q Querier, log *slog.Logger) (*Engine, error) {
	if set == nil || mgr == nil || q == nil {
		return nil, fmt.Errorf("rules engine: %w: a rule set, a manager and a querier are required", hv.ErrInvalid)
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{mgr: mgr, q: q, load: load, every: cfg.Every, log: log, set: set, health: map[string]*ruleHealth{},
		m: newEngineMetrics(cfg.Registerer)}
	return e, nil
}

// Observe feeds every streaming rule the readings ingest just stored.
func (e *Engine) Observe(rs []hv.Reading) {
	e.mu.RLock()
	set := e.set
	e.mu.RUnlock()
	for _, o := range set.Observers() {
		o.Observe(rs)
	}
}

// Run evaluates every rule at each multiple of the interval until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	for {
		now := time.Now()
		next := now.Truncate(e.every).Add(e.every)
		select {
		case <-ctx.Done():
			return
		case <-time.After(next.Sub(now)):
		}
		e.EvalAll(ctx, next)
	}
}

// EvalAll evaluates every rule of the set at now and hands the conditions to the Manager. A rule that fails
// keeps its alerts as they are (it says nothing about them) and reports its error in its health.
func (e *Engine) EvalAll(ctx context.Context, now time.Time) {
	e.evalMu.Lock()
	defer e.evalMu.Unlock()
	e.mu.RLock()
	set := e.set
	e.mu.RUnlock()
	for _, r := range set.Rules {
		name := r.Name()
		if _, inactive := set.Inactive[name]; inactive {
			continue
		}
		sp, ok := r.(Specced)
		if !ok {
			continue
		}
		start := time.Now()
		conds, err := r.Eval(ctx, now, e.q)
		took := time.Since(start)
		e.m.evals.WithLabelValues(name).Inc()
		e.m.seconds.WithLabelValues(name).Observe(took.Seconds())
		if err == nil {
			err = e.mgr.Update(ctx, now, sp.Spec(), conds)
		}
		if err != nil {
			e.m.errors.WithLabelValues(name).Inc()
			e.log.Warn("rule evaluation failed", "rule", name, "err", err)
		}
		e.mu.Lock()
		e.health[name] = &ruleHealth{lastEval: now, duration: took, err: err, conditions: len(conds)}
		e.mu.Unlock()
	}
	e.countAlerts(ctx)
}

// countAlerts refreshes the alerts-by-state gauge from the Manager's pending and firing alerts.
func (e *Engine) countAlerts(ctx context.Context) {
	e.m.alerts.Reset()
	for _, st := range []hv.AlertState{hv.AlertPending, hv.AlertFiring} {
		as, err := e.mgr.Alerts(ctx, Filter{State: st})
		if err != nil {
			continue
		}
		byRule := map[string]int{}
		for _, a := range as {
			byRule[a.Rule]++
		}
		for rule, n := range byRule {
			e.m.alerts.WithLabelValues(rule, string(st)).Set(float64(n))
		}
	}
}

// Reload loads the rule set again. When the new set is invalid the running one stays, and the error is
// returned and kept for the API; otherwise the rules that disappeared have their alerts resolved.
func (e *Engine) Reload(ctx context.Context, now time.Time) error {
	if e.load == nil {
		return errors.New("rules reload: no rule source configured")
	}
	set, err := e.load()
	e.mu.Lock()
	e.reloadAt, e.reloadErr = now, err
	if err != nil {
		e.mu.Unlock()
		e.m.reloads.WithLabelValues("error").Inc()
		e.log.Error("rules reload refused: the previous rules keep running", "err", err)
		return err
	}
	old := e.set
	e.set = set
	for name := range e.health {
		if _, ok := set.Rule(name); !ok {
			delete(e.health, name)
		}
	}
	e.mu.Unlock()
	e.m.reloads.WithLabelValues("ok").Inc()
	for _, r := range old.Rules {
		if _, ok := set.Rule(r.Name()); !ok {
			if err := e.mgr.RemoveRule(ctx, now, r.Name()); err != nil {
				e.log.Warn("alerts of a removed rule not resolved", "rule", r.Name(), "err", err)
			}
		}
	}
	e.log.Info("rules reloaded", "rules", len(set.Rules), "inactive", len(set.Inactive))
	return nil
}

// Status returns every rule's health, in set order, and the last reload's outcome.
func (e *Engine) Status() ([]RuleStatus, ReloadStatus) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]RuleStatus, 0, len(e.set.Rules))
	for _, r := range e.set.Rules {
		st := RuleStatus{Name: r.Name(), Health: "unknown"}
		if sp, ok := r.(Specced); ok {
			s := sp.Spec()
			st.Severity = s.Severity
			if s.For > 0 {
				st.For = s.For.String()
			}
			if s.KeepFiringFor > 0 {
				st.KeepFiringFor = s.KeepFiringFor.String()
			}
		}
		if why, ok := e.set.Inactive[r.Name()]; ok {
			st.Health, st.LastError = "inactive", why
		} else if h := e.health[r.Name()]; h != nil {
			st.Health, st.LastEval, st.EvalDuration, st.Conditions = "ok", h.lastEval, h.duration, h.conditions
			if h.err != nil {
				st.Health, st.LastError = "error", h.err.Error()
			}
		}
		out = append(out, st)
	}
	rs := ReloadStatus{At: e.reloadAt}
	if e.reloadErr != nil {
		rs.Error = e.reloadErr.Error()
	}
	return out, rs
}

// RuleNames lists the running rules.
func (e *Engine) RuleNames() []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]string, 0, len(e.set.Rules))
	for _, r := range e.set.Rules {
		out = append(out, r.Name())
	}
	return slices.Clip(out)
}

type engineMetrics struct {
	evals, errors *prometheus.CounterVec
	seconds       *prometheus.HistogramVec
	alerts        *prometheus.GaugeVec
	reloads       *prometheus.CounterVec
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		evals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_rule_evaluations_total", Help: "Evaluations of each rule.",
		}, []string{"rule"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_rule_evaluation_failures_total", Help: "Evaluations of each rule that failed (query or alert store error).",
		}, []string{"rule"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "hyperviseur_rule_evaluation_seconds", Help: "Duration of one evaluation of a rule.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}, []string{"rule"}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "hyperviseur_alerts", Help: "Pending and firing alerts, by rule and state.",
		}, []string{"rule", "state"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hyperviseur_rule_reloads_total", Help: "Rule set reloads, by outcome (ok, error: the previous set kept).",
		}, []string{"outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.evals, m.errors, m.seconds, m.alerts, m.reloads)
	}
	return m
}
