package rules

// The alert lifecycle, after Prometheus rules/alerting.go and Alertmanager:
//
//   - Identity. An alert is keyed by its fingerprint, a 64-bit FNV-1a hash of the rule name and the sorted
//     label pairs, written as 16 hex digits. The fingerprint is also the alert's ID in the API and the
//     store: it is stable across evaluations, restarts and instances, so an occurrence that resolves and
//     comes back keeps its ID and its history.
//   - States. A new condition is pending (ActiveAt = now) and fires once it has held for the rule's `for`
//     (at once when `for` is 0). A pending alert whose condition clears is dropped (history: "inactive");
//     a firing one resolves once the condition has been absent for `keep_firing_for`, measured from the
//     first evaluation it was absent at. A resolved alert whose condition comes back is pending again.
//   - Flap damping. Firing and resolved transitions are counted over FlapWindow (default 1 h). When a
//     re-fire makes FlapCount of them (default 3: fired, resolved, fired again) the alert is flapping: it
//     is then held firing until its condition has stayed clear for the whole FlapWindow (its
//     keep_firing_for is raised to FlapWindow), so a condition blinking every few minutes gives at most
//     FlapCount notifications and one final "resolved", instead of one pair per blink.
//   - Acknowledgement. A technician acknowledges a pending or firing alert (user, comment, time); it stays
//     firing, marked acknowledged, until it resolves, which clears the acknowledgement.
//   - Silences (silence.go). A firing alert matched by an active silence is marked silenced and not
//     notified; if it still fires when the silence ends, it is notified then.
//   - Topology suppression (Alertmanager inhibition). Alerts of the communication-loss rules named in
//     Options.SilenceRules suppress the alerts beneath them while they fire: a site-level one (label site,
//     no device) suppresses the alerts of the devices of that site (their communication-loss alerts
//     included: a dead cabinet gives one alert, not one per luminaire) and the site's other site-level
//     alerts; a device-level one suppresses the device's alerts of other rules. A suppressed alert keeps
//     its lifecycle, is marked SuppressedBy, and is not notified; if it still fires when the suppressing
//     alert resolves, it is notified then.
//   - Notifications. Only firing and resolved go to the Notifier, never pending; each is sent once per
//     transition (the last state delivered is persisted, so a restart does not re-send). "Resolved" is
//     sent exactly when "firing" was, even if the alert is silenced or suppressed by then: it closes what
//     the recipient was told. A failed Notify is retried at the rule's next evaluation.
//   - Persistence (sqlite.go). Every transition, acknowledgement and silence is written before
//     notifications go out, so a restart neither re-fires nor loses `for` progress (ActiveAt is
//     stored) nor keep_firing_for progress. The evidence, value and summary refreshed at every evaluation
//     are kept current in memory and written at most every Options.EvidenceEvery per alert (and on every
//     transition and on Flush): after a crash an alert's evidence may be that old until its next
//     evaluation, its state never is.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// ErrNotFound is returned for an alert or a silence id that does not exist.
var ErrNotFound = errors.New("not found")

// RuleSpec is what the Manager needs of a rule's configuration.
type RuleSpec struct {
	Name          string
	Severity      hv.Severity   // empty: warning
	For           time.Duration // how long a condition must hold before its alert fires
	KeepFiringFor time.Duration // how long a firing alert stays firing after its condition clears
	Summary       string        // used when a condition brings no summary of its own
}

// Topology tells which site a device belongs to (the registry: a luminaire's cabinet, a meter's building).
type Topology interface {
	Parent(device string) (site string, ok bool)
}

// TopologyFunc adapts a function to Topology, e.g. over the registry the holder swaps on each edit.
type TopologyFunc func(device string) (site string, ok bool)

// Parent calls f.
func (f TopologyFunc) Parent(device string) (string, bool) { return f(device) }

// LookupTopology is the Topology of a registry lookup: registry.Registry.Lookup, or a closure over the
// registry currently held.
type LookupTopology func(device string) (*hv.Device, *hv.Site, bool)

// Parent returns the device's site.
func (f LookupTopology) Parent(device string) (string, bool) {
	d, _, ok := f(device)
	if !ok || d == nil {
		return "", false
	}
	return d.Site, true
}

var (
	_ Topology = TopologyFunc(nil)
	_ Topology = LookupTopology(nil)
)

// Options tune the lifecycle; the zero value gives the defaults.
type Options struct {
	// SilenceRules names the communication-loss rules whose alerts suppress the alerts beneath them.
	SilenceRules []string
	// FlapWindow is the flap-counting window and the hold of a flapping alert. Default 1 h.
	FlapWindow time.Duration
	// FlapCount is the number of firing/resolved transitions within FlapWindow that makes an alert
	// flapping. Default 3; negative disables damping.
	FlapCount int
	// ResolvedRetention is how long a resolved alert stays in memory (the store keeps it). Default and
	// minimum: FlapWindow, so flap history survives.
	ResolvedRetention time.Duration
	// EvidenceEvery bounds how often an alert whose only change is its evidence (value, summary, series
	// window) is written to the store. Default 5 min; negative writes at every evaluation.
	EvidenceEvery time.Duration
}

func (o *Options) defaults() {
	if o.FlapWindow <= 0 {
		o.FlapWindow = time.Hour
	}
	if o.FlapCount == 0 {
		o.FlapCount = 3
	}
	if o.ResolvedRetention < o.FlapWindow {
		o.ResolvedRetention = o.FlapWindow
	}
	if o.EvidenceEvery == 0 {
		o.EvidenceEvery = 5 * time.Minute
	}
}

// Ack is a technician's acknowledgement of an alert.
type Ack struct {
	By      string    `json:"by"`
	Comment string    `json:"comment,omitempty"`
	At      time.Time `json:"at"`
}

// EventKind names an entry of an alert's history.
type EventKind string

// History events: the state transitions (pending, firing, resolved, and inactive for a pending alert
// whose condition cleared), acknowledgements, and changes of silencing, suppression and flapping.
const (
	EventPending      EventKind = "pending"
	EventFiring       EventKind = "firing"
	EventResolved     EventKind = "resolved"
	EventInactive     EventKind = "inactive"
	EventAcknowledged EventKind = "acknowledged"
	EventSilenced     EventKind = "silenced"
	EventUnsilenced   EventKind = "unsilenced"
	EventSuppressed   EventKind = "suppressed"
	EventUnsuppressed EventKind = "unsuppressed"
	EventFlapping     EventKind = "flapping"
)

// Event is one entry of an alert's history.
type Event struct {
	At    time.Time `json:"at"`
	Kind  EventKind `json:"kind"`
	Value float64   `json:"value"`
	By    string    `json:"by,omitempty"`
	Note  string    `json:"note,omitempty"` // the ack comment, the silence ids, the suppressing alert
}

// Alert is the rules-side view of an alert: the domain alert plus what a technician needs to act on it.
// Its ID is its Fingerprint.
type Alert struct {
	hv.Alert
	Evidence     Evidence  `json:"evidence"`
	LastSeen     time.Time `json:"last_seen,omitzero"` // the last evaluation the condition held at
	Acknowledged *Ack      `json:"acknowledged,omitempty"`
	SilencedBy   []string  `json:"silenced_by,omitempty"`   // ids of the active silences matching it
	SuppressedBy string    `json:"suppressed_by,omitempty"` // fingerprint of the communication-loss alert above it
	Flapping     bool      `json:"flapping,omitempty"`
	History      []Event   `json:"history,omitempty"` // filled by Manager.Alert only
}

// Filter selects alerts for the API. Zero fields select everything.
type Filter struct {
	State    hv.AlertState
	Severity hv.Severity
	Rule     string
	// EPCI restricts to alerts whose "epci" label is one of these (a pilote's scope). Nil: no restriction;
	// an empty non-nil list matches nothing, so a pilote without EPCI sees nothing.
	EPCI   []string
	Labels map[string]string // label equality
	Limit  int               // resolved alerts come from the store, newest first; 0: 500
}

// occurrence is the span of one activation of an alert, kept to restore a resolved alert when a new
// activation never fires.
type occurrence struct {
	ActiveAt, FiredAt, ResolvedAt time.Time
}

// alertRow is the persisted state of one alert.
type alertRow struct {
	Fingerprint string
	Rule        string
	Labels      map[string]string
	Severity    hv.Severity
	State       hv.AlertState
	Summary     string
	Value       float64
	Evidence    Evidence
	ActiveAt    time.Time
	FiredAt     time.Time
	ResolvedAt  time.Time
	LastSeen    time.Time
	ClearedAt   time.Time // first evaluation the condition of a firing alert was absent at (keep_firing_for)
	Prev        occurrence
	Notified    hv.AlertState // the last state delivered to the Notifier: "", firing or resolved
	Flaps       []time.Time   // recent firing/resolved transitions, at most FlapCount
	Flapping    bool
	Ack         *Ack
}

// entry is the in-memory state of one alert.
type entry struct {
	alertRow
	hash         uint64
	rule         *ruleState
	site, device string // topology scope
	gen          uint64 // the rule evaluation that last saw the condition
	silencedBy   []string
	suppressedBy string
	dirty        bool // must be written at the next flush
	stale        bool // evidence changed since the last write
	persistedAt  time.Time
	notifySeq    uint64
}

func (e *entry) active() bool { return e.State == hv.AlertPending || e.State == hv.AlertFiring }

// suppressorKey is the scope a firing alert of a silence rule suppresses: "d\x00<device>" or
// "s\x00<site>"; empty when it is neither.
func (e *entry) suppressorKey() string {
	if !e.rule.silence {
		return ""
	}
	if d := e.Labels["device"]; d != "" {
		return "d\x00" + d
	}
	if s := e.Labels["site"]; s != "" {
		return "s\x00" + s
	}
	return ""
}

// view is the alert as the outside world sees it (API, notifiers): JSON-safe, so a value that is not a
// finite number shows as 0.
func (e *entry) view() Alert {
	ev := e.Evidence
	ev.Value, ev.Baseline, ev.Threshold = finite(ev.Value), finite(ev.Baseline), finite(ev.Threshold)
	a := Alert{
		Alert: hv.Alert{
			Fingerprint: e.Fingerprint,
			Rule:        e.Rule,
			Labels:      maps.Clone(e.Labels),
			Severity:    e.Severity,
			State:       e.State,
			Summary:     e.Summary,
			Value:       finite(e.Value),
			ActiveAt:    e.ActiveAt,
			FiredAt:     e.FiredAt,
			ResolvedAt:  e.ResolvedAt,
		},
		Evidence:     ev,
		LastSeen:     e.LastSeen,
		SilencedBy:   slices.Clone(e.silencedBy),
		SuppressedBy: e.suppressedBy,
		Flapping:     e.Flapping,
	}
	if e.Ack != nil {
		ack := *e.Ack
		a.Acknowledged = &ack
	}
	return a
}

// ruleState holds the alerts of one rule.
type ruleState struct {
	spec    RuleSpec
	silence bool // a communication-loss rule (Options.SilenceRules)
	alerts  map[uint64]*entry
	gen     uint64
}

// pendingNotice remembers what a notification changed, to undo it when delivery fails.
type pendingNotice struct {
	e    *entry
	prev hv.AlertState
	seq  uint64
}

// Manager turns rule evaluations into alerts with a lifecycle. It is safe for concurrent use: evaluations
// of different rules may run in parallel goroutines (one rule's evaluations are expected in order). The
// Notifier is called without the state lock held, one batch at a time, and must not call Update.
type Manager struct {
	store  *SQLite
	notify hv.Notifier
	topo   Topology
	log    *slog.Logger
	opts   Options

	// notifyMu orders deliveries as the state changes that caused them; taken before mu is released.
	notifyMu sync.Mutex

	mu        sync.Mutex
	rules     map[string]*ruleState
	all       map[uint64]*entry
	members   map[string]map[*entry]struct{} // "s\x00site" / "d\x00device" → alerts in that scope
	silent    map[string][]*entry            // suppressorKey → firing alerts of silence rules
	changed   map[string]struct{}            // suppressor scopes changed since the last refresh
	silences  []Silence
	dirty     map[*entry]struct{}
	touched   map[*entry]struct{} // only the evidence changed: a narrower write
	deleted   map[string]struct{} // fingerprints whose row must go
	events    []eventRow
	acks      []eventRow
	keyBuf    []string
	idBuf     []string
	activeBuf []*Silence
}

// eventRow is a history event waiting to be written.
type eventRow struct {
	fp string
	ev Event
}

// NewManager loads the alerts and silences persisted in store and returns a Manager continuing from them.
// notify and topo may be nil (no notifications; sites only from the "site" label); log may be nil.
func NewManager(ctx context.Context, store *SQLite, notify hv.Notifier, topo Topology, log *slog.Logger, opts Options) (*Manager, error) {
	if store == nil {
		return nil, errors.New("new alert manager: no store")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	opts.defaults()
	opts.SilenceRules = slices.Clone(opts.SilenceRules)
	m := &Manager{
		store:   store,
		notify:  notify,
		topo:    topo,
		log:     log,
		opts:    opts,
		rules:   map[string]*ruleState{},
		all:     map[uint64]*entry{},
		members: map[string]map[*entry]struct{}{},
		silent:  map[string][]*entry{},
		changed: map[string]struct{}{},
		dirty:   map[*entry]struct{}{},
		touched: map[*entry]struct{}{},
		deleted: map[string]struct{}{},
	}
	rows, err := store.loadAlerts(ctx, opts.ResolvedRetention)
	if err != nil {
		return nil, fmt.Errorf("new alert manager: %w", err)
	}
	for i := range rows {
		h, err := strconv.ParseUint(rows[i].Fingerprint, 16, 64)
		if err != nil {
			return nil, fmt.Errorf("new alert manager: stored alert %q: bad fingerprint", rows[i].Fingerprint)
		}
		r := m.rule(RuleSpec{Name: rows[i].Rule, Severity: rows[i].Severity})
		e := m.add(r, h, rows[i])
		e.persistedAt = e.LastSeen
		if e.State == hv.AlertFiring {
			if k := e.suppressorKey(); k != "" {
				m.silent[k] = append(m.silent[k], e)
			}
		}
	}
	if m.silences, err = store.loadSilences(ctx); err != nil {
		return nil, fmt.Errorf("new alert manager: %w", err)
	}
	// Silencing and suppression are derived, not stored: recompute them as of the newest stored activity,
	// without notifying (what was delivered is stored); the first evaluation of each rule brings them to now.
	var latest time.Time
	for _, e := range m.all {
		latest = maxTime(latest, e.LastSeen, e.ResolvedAt)
	}
	active := m.activeSilences(latest)
	for _, e := range m.all {
		m.refreshMute(e, latest, active, false)
	}
	clear(m.changed)
	return m, nil
}

// rule returns the state of a rule, creating it, with spec as its current configuration.
func (m *Manager) rule(spec RuleSpec) *ruleState {
	r := m.rules[spec.Name]
	if r == nil {
		r = &ruleState{alerts: map[uint64]*entry{}, silence: slices.Contains(m.opts.SilenceRules, spec.Name)}
		m.rules[spec.Name] = r
	}
	r.spec = spec
	return r
}

// add registers an alert in memory.
func (m *Manager) add(r *ruleState, h uint64, row alertRow) *entry {
	e := &entry{alertRow: row, hash: h, rule: r}
	e.device = e.Labels["device"]
	e.site = e.Labels["site"]
	if e.device != "" && m.topo != nil {
		if s, ok := m.topo.Parent(e.device); ok {
			e.site = s
		}
	}
	r.alerts[h] = e
	m.all[h] = e
	if e.site != "" {
		m.join("s\x00"+e.site, e)
	}
	if e.device != "" {
		m.join("d\x00"+e.device, e)
	}
	return e
}

func (m *Manager) join(key string, e *entry) {
	set := m.members[key]
	if set == nil {
		set = map[*entry]struct{}{}
		m.members[key] = set
	}
	set[e] = struct{}{}
}

func (m *Manager) leave(key string, e *entry) {
	if set := m.members[key]; set != nil {
		delete(set, e)
		if len(set) == 0 {
			delete(m.members, key)
		}
	}
}

// forget removes an alert from memory; drop also deletes its stored row.
func (m *Manager) forget(e *entry, drop bool) {
	delete(e.rule.alerts, e.hash)
	delete(m.all, e.hash)
	if e.site != "" {
		m.leave("s\x00"+e.site, e)
	}
	if e.device != "" {
		m.leave("d\x00"+e.device, e)
	}
	m.unsilence(e)
	delete(m.touched, e)
	if drop {
		delete(m.dirty, e)
		m.deleted[e.Fingerprint] = struct{}{}
	}
}

// unsilence removes a firing communication-loss alert from the suppressor index.
func (m *Manager) unsilence(e *entry) {
	k := e.suppressorKey()
	if k == "" {
		return
	}
	list := m.silent[k]
	if i := slices.Index(list, e); i >= 0 {
		list = slices.Delete(list, i, i+1)
		if len(list) == 0 {
			delete(m.silent, k)
		} else {
			m.silent[k] = list
		}
		m.changed[k] = struct{}{}
	}
}

// Update applies one evaluation of one rule at now: conds are the conditions holding; an alert of the
// rule whose condition is absent has cleared. The in-memory state always advances; the error reports a
// store write or a notification that failed, both retried at the next call.
func (m *Manager) Update(ctx context.Context, now time.Time, spec RuleSpec, conds []Condition) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if spec.Severity == "" {
		spec.Severity = hv.SeverityWarning
	}
	now = simTime(now)

	m.mu.Lock()
	r := m.rule(spec)
	notices, batch, errs := m.evaluate(ctx, now, r, conds)
	if err := m.flush(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := m.deliver(ctx, notices, batch); err != nil { // releases mu
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("update alerts of rule %q: %w", spec.Name, errors.Join(errs...))
	}
	return nil
}

// evaluate applies one evaluation of rule r and returns the notifications it calls for; mu must be held.
func (m *Manager) evaluate(ctx context.Context, now time.Time, r *ruleState, conds []Condition) ([]pendingNotice, []hv.Alert, []error) {
	r.gen++
	m.pruneSilences(now)
	active := m.activeSilences(now)
	var errs []error
	for i := range conds {
		c := &conds[i]
		h := m.hash(r.spec.Name, c.Labels)
		e := r.alerts[h]
		if e == nil {
			var err error
			if e, err = m.create(ctx, r, h, now, c); err != nil {
				errs = append(errs, err)
			}
		}
		if e.gen == r.gen {
			continue // the same labels twice in one evaluation: the first one counts
		}
		m.seen(e, now, c)
	}
	for _, e := range r.alerts {
		if e.gen != r.gen {
			m.absent(e, now) // may delete e from r.alerts: allowed while ranging
		}
	}
	var notices []pendingNotice
	var batch []hv.Alert
	for _, e := range r.alerts {
		if e.Severity != r.spec.Severity {
			e.Severity = r.spec.Severity
			m.markDirty(e)
		}
		m.refreshMute(e, now, active, true)
		notices, batch = m.wantNotify(e, notices, batch)
		if e.stale && !e.dirty && (m.opts.EvidenceEvery < 0 || now.Sub(e.persistedAt) >= m.opts.EvidenceEvery) {
			m.touched[e] = struct{}{}
		}
	}
	notices, batch = m.refreshChanged(now, active, notices, batch)
	return notices, batch, errs
}

// RemoveRule ends the alerts of a rule gone from the configuration, at now: pending ones are dropped,
// firing ones resolve at once (notified if their firing was), and the rule is forgotten. Removing an
// unknown rule does nothing.
func (m *Manager) RemoveRule(ctx context.Context, now time.Time, name string) error {
	now = simTime(now)
	m.mu.Lock()
	r := m.rules[name]
	if r == nil {
		m.mu.Unlock()
		return nil
	}
	r.spec.KeepFiringFor = 0
	for _, e := range r.alerts {
		e.Flapping = false
	}
	notices, batch, errs := m.evaluate(ctx, now, r, nil)
	for _, e := range r.alerts {
		m.forget(e, false)
	}
	delete(m.rules, name)
	if err := m.flush(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := m.deliver(ctx, notices, batch); err != nil { // releases mu
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("remove rule %q: %w", name, errors.Join(errs...))
	}
	return nil
}

// Rules lists the rules holding alerts in memory, sorted: after a restart, those no longer configured are
// to be removed with RemoveRule.
func (m *Manager) Rules() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Sorted(maps.Keys(m.rules))
}

func (s RuleSpec) validate() error {
	switch {
	case s.Name == "":
		return fmt.Errorf("update alerts: rule without a name: %w", hv.ErrInvalid)
	case s.For < 0 || s.KeepFiringFor < 0:
		return fmt.Errorf("update alerts of rule %q: negative for or keep_firing_for: %w", s.Name, hv.ErrInvalid)
	}
	switch s.Severity {
	case "", hv.SeverityCritical, hv.SeverityWarning, hv.SeverityInfo:
		return nil
	}
	return fmt.Errorf("update alerts of rule %q: unknown severity %q: %w", s.Name, s.Severity, hv.ErrInvalid)
}

// simTime drops what the store cannot keep (sub-millisecond precision, the monotonic reading, the zone),
// so the state in memory is the state a restart reloads.
func simTime(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// create starts a new pending alert for a condition not held in memory. A resolved occurrence of the same
// alert may be in the store only (past ResolvedRetention): it is fetched so that, if this activation never
// fires, the alert returns to it rather than disappearing.
func (m *Manager) create(ctx context.Context, r *ruleState, h uint64, now time.Time, c *Condition) (*entry, error) {
	fp := fingerprintString(h)
	prev, _, err := m.store.resolvedOccurrence(ctx, fp)
	if err != nil {
		err = fmt.Errorf("alert %s: %w", fp, err)
	}
	e := m.add(r, h, alertRow{
		Fingerprint: fp,
		Rule:        r.spec.Name,
		Labels:      maps.Clone(c.Labels),
		Severity:    r.spec.Severity,
		State:       hv.AlertPending,
		Value:       c.Value,
		ActiveAt:    now,
		Prev:        prev,
	})
	delete(m.deleted, fp)
	m.event(e, now, EventPending, "", "")
	m.markDirty(e)
	m.log.Debug("alert pending", "rule", e.Rule, "fingerprint", fp, "labels", e.Labels)
	return e, err
}

// seen applies a condition holding at now.
func (m *Manager) seen(e *entry, now time.Time, c *Condition) {
	spec := &e.rule.spec
	e.gen = e.rule.gen
	e.LastSeen = now
	summary := c.Summary
	if summary == "" {
		summary = spec.Summary
	}
	if e.Value != c.Value || e.Summary != summary || e.Evidence != c.Evidence {
		e.Value, e.Summary, e.Evidence = c.Value, summary, c.Evidence
		e.stale = true
	}
	if !e.ClearedAt.IsZero() { // back while kept firing
		e.ClearedAt = time.Time{}
		m.markDirty(e)
	}
	if e.State == hv.AlertResolved {
		e.Prev = occurrence{e.ActiveAt, e.FiredAt, e.ResolvedAt}
		e.ActiveAt, e.FiredAt, e.ResolvedAt = now, time.Time{}, time.Time{}
		m.setState(e, now, hv.AlertPending, EventPending)
	}
	if e.State == hv.AlertPending && now.Sub(e.ActiveAt) >= spec.For {
		e.FiredAt = now
		e.Prev = occurrence{}
		flapping := m.flap(e, now)
		m.setState(e, now, hv.AlertFiring, EventFiring)
		if flapping && !e.Flapping {
			e.Flapping = true
			m.event(e, now, EventFlapping, "", fmt.Sprintf("%d transitions within %s: held firing until clear for %s",
				len(e.Flaps), m.opts.FlapWindow, m.opts.FlapWindow))
		}
	}
}

// absent applies the absence of a rule's condition at now.
func (m *Manager) absent(e *entry, now time.Time) {
	switch e.State {
	case hv.AlertPending:
		m.event(e, now, EventInactive, "", "")
		e.Ack = nil
		if e.Prev.ResolvedAt.IsZero() {
			m.forget(e, true)
			return
		}
		e.ActiveAt, e.FiredAt, e.ResolvedAt = e.Prev.ActiveAt, e.Prev.FiredAt, e.Prev.ResolvedAt
		e.Prev = occurrence{}
		e.State = hv.AlertResolved
		e.silencedBy, e.suppressedBy = nil, ""
		m.markDirty(e)
	case hv.AlertFiring:
		if e.ClearedAt.IsZero() {
			e.ClearedAt = now
			m.markDirty(e)
		}
		hold := e.rule.spec.KeepFiringFor
		if e.Flapping {
			hold = max(hold, m.opts.FlapWindow)
		}
		if now.Sub(e.ClearedAt) < hold {
			return
		}
		e.ResolvedAt = now
		e.ClearedAt = time.Time{}
		e.Ack = nil
		e.Flapping = false
		m.flap(e, now)
		m.setState(e, now, hv.AlertResolved, EventResolved)
	case hv.AlertResolved:
		if now.Sub(e.ResolvedAt) >= m.opts.ResolvedRetention {
			m.forget(e, false)
		}
	}
}

// flap records a firing or resolved transition at now and reports whether the alert now has FlapCount of
// them within FlapWindow.
func (m *Manager) flap(e *entry, now time.Time) bool {
	if m.opts.FlapCount < 0 {
		return false
	}
	from := now.Add(-m.opts.FlapWindow)
	e.Flaps = slices.DeleteFunc(e.Flaps, func(t time.Time) bool { return !t.After(from) })
	if len(e.Flaps) >= m.opts.FlapCount {
		e.Flaps = slices.Delete(e.Flaps, 0, len(e.Flaps)-m.opts.FlapCount+1)
	}
	e.Flaps = append(e.Flaps, now)
	return len(e.Flaps) >= m.opts.FlapCount
}

// setState moves an alert to state, recording the event and keeping the suppressor index current.
func (m *Manager) setState(e *entry, now time.Time, state hv.AlertState, kind EventKind) {
	old := e.State
	e.State = state
	m.event(e, now, kind, "", "")
	m.markDirty(e)
	m.log.Debug("alert "+string(kind), "rule", e.Rule, "fingerprint", e.Fingerprint, "labels", e.Labels)
	if state != hv.AlertPending && state != hv.AlertFiring {
		e.silencedBy, e.suppressedBy = nil, ""
	}
	k := e.suppressorKey()
	switch {
	case k == "":
	case old != hv.AlertFiring && state == hv.AlertFiring:
		m.silent[k] = append(m.silent[k], e)
		m.changed[k] = struct{}{}
	case old == hv.AlertFiring && state != hv.AlertFiring:
		m.unsilence(e)
	}
}

func (m *Manager) markDirty(e *entry) {
	if !e.dirty {
		e.dirty = true
		m.dirty[e] = struct{}{}
	}
}

func (m *Manager) event(e *entry, now time.Time, kind EventKind, by, note string) {
	m.events = append(m.events, eventRow{fp: e.Fingerprint, ev: Event{At: now, Kind: kind, Value: e.Value, By: by, Note: note}})
}

// pruneSilences forgets, in memory, silences ended for a day (the store keeps them).
func (m *Manager) pruneSilences(now time.Time) {
	m.silences = slices.DeleteFunc(m.silences, func(s Silence) bool { return now.Sub(s.To) > 24*time.Hour })
}

// activeSilences returns the silences active at now, in a buffer reused by the next call.
func (m *Manager) activeSilences(now time.Time) []*Silence {
	m.activeBuf = m.activeBuf[:0]
	for i := range m.silences {
		if m.silences[i].Active(now) {
			m.activeBuf = append(m.activeBuf, &m.silences[i])
		}
	}
	return m.activeBuf
}

// refreshMute recomputes whether an active alert is silenced and suppressed, recording changes in its
// history when record is set.
func (m *Manager) refreshMute(e *entry, now time.Time, active []*Silence, record bool) {
	if !e.active() {
		return
	}
	ids := m.idBuf[:0]
	for _, s := range active {
		if s.Matches(e.Rule, e.Severity, e.Labels) {
			ids = append(ids, s.ID)
		}
	}
	m.idBuf = ids
	if !slices.Equal(ids, e.silencedBy) {
		if len(ids) == 0 {
			e.silencedBy = nil
			if record {
				m.event(e, now, EventUnsilenced, "", "")
			}
		} else {
			e.silencedBy = slices.Clone(ids)
			if record {
				m.event(e, now, EventSilenced, "", "silence "+strings.Join(ids, ", "))
			}
		}
	}
	sup := m.suppressor(e)
	if sup != e.suppressedBy {
		e.suppressedBy = sup
		if record {
			if sup == "" {
				m.event(e, now, EventUnsuppressed, "", "")
			} else {
				m.event(e, now, EventSuppressed, "", "communication lost: alert "+sup)
			}
		}
	}
}

// suppressor returns the fingerprint of a firing communication-loss alert above e, or "".
func (m *Manager) suppressor(e *entry) string {
	if e.device != "" {
		if !e.rule.silence {
			if list := m.silent["d\x00"+e.device]; len(list) > 0 {
				return list[0].Fingerprint
			}
		}
		if e.site != "" {
			if list := m.silent["s\x00"+e.site]; len(list) > 0 {
				return list[0].Fingerprint
			}
		}
		return ""
	}
	if e.site != "" && !e.rule.silence {
		if list := m.silent["s\x00"+e.site]; len(list) > 0 {
			return list[0].Fingerprint
		}
	}
	return ""
}

// refreshChanged re-evaluates the alerts in the scopes whose suppressors changed.
func (m *Manager) refreshChanged(now time.Time, active []*Silence, notices []pendingNotice, batch []hv.Alert) ([]pendingNotice, []hv.Alert) {
	for k := range m.changed {
		for e := range m.members[k] {
			m.refreshMute(e, now, active, true)
			notices, batch = m.wantNotify(e, notices, batch)
		}
	}
	clear(m.changed)
	return notices, batch
}

// wantNotify queues the notification an alert's state calls for, if it was not delivered yet.
func (m *Manager) wantNotify(e *entry, notices []pendingNotice, batch []hv.Alert) ([]pendingNotice, []hv.Alert) {
	want := e.Notified
	switch e.State {
	case hv.AlertFiring:
		if len(e.silencedBy) == 0 && e.suppressedBy == "" {
			want = hv.AlertFiring
		}
	case hv.AlertResolved:
		if e.Notified == hv.AlertFiring {
			want = hv.AlertResolved
		}
	}
	if want == e.Notified {
		return notices, batch
	}
	e.notifySeq++
	notices = append(notices, pendingNotice{e: e, prev: e.Notified, seq: e.notifySeq})
	e.Notified = want
	m.markDirty(e)
	return notices, append(batch, e.view().Alert)
}

// flush writes the dirty alerts, the deletions and the history events queued, in one transaction. On
// failure everything stays queued for the next call.
func (m *Manager) flush(ctx context.Context, now time.Time) error {
	if len(m.dirty) == 0 && len(m.touched) == 0 && len(m.deleted) == 0 && len(m.events) == 0 && len(m.acks) == 0 {
		return nil
	}
	rows := make([]*alertRow, 0, len(m.dirty))
	for e := range m.dirty {
		rows = append(rows, &e.alertRow)
	}
	evidence := make([]*alertRow, 0, len(m.touched))
	for e := range m.touched {
		if !e.dirty {
			evidence = append(evidence, &e.alertRow)
		}
	}
	if err := m.store.save(ctx, rows, evidence, m.deleted, m.events, m.acks); err != nil {
		return err
	}
	for e := range m.dirty {
		e.dirty, e.stale = false, false
		e.persistedAt = now
	}
	for e := range m.touched {
		e.stale = false
		e.persistedAt = now
	}
	clear(m.dirty)
	clear(m.touched)
	clear(m.deleted)
	m.events = m.events[:0]
	m.acks = m.acks[:0]
	return nil
}

// deliver releases mu and sends the batch; on failure the alerts are marked undelivered again, so the
// next evaluation retries.
func (m *Manager) deliver(ctx context.Context, notices []pendingNotice, batch []hv.Alert) error {
	if len(batch) == 0 || m.notify == nil {
		m.mu.Unlock()
		return nil
	}
	slices.SortFunc(batch, func(a, b hv.Alert) int { return cmp.Compare(a.Fingerprint, b.Fingerprint) })
	m.notifyMu.Lock()
	m.mu.Unlock()
	err := m.notify.Notify(ctx, batch)
	m.notifyMu.Unlock()
	if err == nil {
		return nil
	}
	m.mu.Lock()
	for _, n := range notices {
		if n.e.notifySeq == n.seq {
			n.e.Notified = n.prev
			m.markDirty(n.e)
		}
	}
	m.mu.Unlock()
	return fmt.Errorf("notify %d alerts: %w", len(batch), err)
}

// Flush writes every alert whose evidence changed since its last write (at shutdown).
func (m *Manager) Flush(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var latest time.Time
	for _, e := range m.all {
		if e.stale {
			m.markDirty(e)
		}
		latest = maxTime(latest, e.LastSeen)
	}
	if err := m.flush(ctx, latest); err != nil {
		return fmt.Errorf("flush alerts: %w", err)
	}
	return nil
}

// Acknowledge marks a pending or firing alert acknowledged by user at now. id is the alert's fingerprint.
func (m *Manager) Acknowledge(ctx context.Context, id, user, comment string, now time.Time) (Alert, error) {
	if user == "" {
		return Alert{}, fmt.Errorf("acknowledge alert %s: no user: %w", id, hv.ErrInvalid)
	}
	h, err := parseFingerprint(id)
	if err != nil {
		return Alert{}, fmt.Errorf("acknowledge alert %q: %w", id, err)
	}
	now = simTime(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.all[h]
	if e == nil || !e.active() {
		return Alert{}, fmt.Errorf("acknowledge alert %s: no pending or firing alert with this id: %w", id, ErrNotFound)
	}
	e.Ack = &Ack{By: user, Comment: comment, At: now}
	m.markDirty(e)
	ev := eventRow{fp: e.Fingerprint, ev: Event{At: now, Kind: EventAcknowledged, Value: e.Value, By: user, Note: comment}}
	m.events = append(m.events, ev)
	m.acks = append(m.acks, ev)
	if err := m.flush(ctx, now); err != nil {
		return e.view(), fmt.Errorf("acknowledge alert %s: %w", id, err)
	}
	return e.view(), nil
}

// AddSilence stores a silence (From defaults to now) and applies it at once; it returns it with its ID.
func (m *Manager) AddSilence(ctx context.Context, s Silence, now time.Time) (Silence, error) {
	now = simTime(now)
	s.From, s.To = simTime(s.From), simTime(s.To)
	if err := s.validate(now); err != nil {
		return Silence{}, fmt.Errorf("add %w", err)
	}
	m.mu.Lock()
	id, err := m.store.insertSilence(ctx, &s)
	if err != nil {
		m.mu.Unlock()
		return Silence{}, fmt.Errorf("add silence: %w", err)
	}
	s.ID = strconv.FormatInt(id, 10)
	m.silences = append(m.silences, s)
	err = m.remute(ctx, now) // releases mu
	return s, err
}

// ExpireSilence ends a silence at now; the firing alerts it muted are notified at once. Expiring an ended
// silence does nothing.
func (m *Manager) ExpireSilence(ctx context.Context, id string, now time.Time) error {
	now = simTime(now)
	m.mu.Lock()
	i := slices.IndexFunc(m.silences, func(s Silence) bool { return s.ID == id })
	var s Silence
	if i >= 0 {
		s = m.silences[i]
	} else {
		var ok bool
		var err error
		if s, ok, err = m.store.silence(ctx, id); err != nil || !ok {
			m.mu.Unlock()
			if err == nil {
				err = ErrNotFound
			}
			return fmt.Errorf("expire silence %q: %w", id, err)
		}
	}
	if !s.To.After(now) {
		m.mu.Unlock()
		return nil
	}
	s.To = now
	if s.From.After(now) {
		s.From = now
	}
	if err := m.store.updateSilence(ctx, &s); err != nil {
		m.mu.Unlock()
		return fmt.Errorf("expire silence %s: %w", id, err)
	}
	if i >= 0 {
		m.silences[i] = s
	}
	return m.remute(ctx, now) // releases mu
}

// remute re-applies silences to every alert after a silence changed, then releases mu and notifies.
func (m *Manager) remute(ctx context.Context, now time.Time) error {
	active := m.activeSilences(now)
	var notices []pendingNotice
	var batch []hv.Alert
	for _, e := range m.all {
		m.refreshMute(e, now, active, true)
		notices, batch = m.wantNotify(e, notices, batch)
	}
	var errs []error
	if err := m.flush(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := m.deliver(ctx, notices, batch); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("apply silences: %w", errors.Join(errs...))
	}
	return nil
}

// Silences returns the silences not ended at now (active or to come), by start.
func (m *Manager) Silences(now time.Time) []Silence {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Silence
	for _, s := range m.silences {
		if s.To.After(now) {
			s.Matchers = maps.Clone(s.Matchers)
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b Silence) int {
		return cmp.Or(a.From.Compare(b.From), cmp.Compare(len(a.ID), len(b.ID)), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Alerts lists alerts for the API: pending and firing ones from memory (current to the last evaluation),
// resolved ones from the store, newest first, up to the limit. Sorted by state (firing, pending,
// resolved), severity, then most recent first.
func (m *Manager) Alerts(ctx context.Context, f Filter) ([]Alert, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	var out []Alert
	seen := map[string]bool{}
	if f.State != hv.AlertResolved {
		m.mu.Lock()
		for _, e := range m.all {
			if e.active() && f.match(&e.alertRow) {
				out = append(out, e.view())
				seen[e.Fingerprint] = true
			}
		}
		m.mu.Unlock()
	}
	if f.State == "" || f.State == hv.AlertResolved {
		rows, err := m.store.resolvedAlerts(ctx, f, func(fp string) bool { return seen[fp] })
		if err != nil {
			return nil, fmt.Errorf("list alerts: %w", err)
		}
		for i := range rows {
			out = append(out, rowView(&rows[i]))
		}
	}
	slices.SortFunc(out, func(a, b Alert) int {
		return cmp.Or(
			cmp.Compare(stateRank(a.State), stateRank(b.State)),
			cmp.Compare(severityRank(a.Severity), severityRank(b.Severity)),
			b.lastChange().Compare(a.lastChange()),
			cmp.Compare(a.Fingerprint, b.Fingerprint),
		)
	})
	return out, nil
}

func (a *Alert) lastChange() time.Time { return maxTime(a.ActiveAt, a.FiredAt, a.ResolvedAt) }

func stateRank(s hv.AlertState) int {
	switch s {
	case hv.AlertFiring:
		return 0
	case hv.AlertPending:
		return 1
	}
	return 2
}

func severityRank(s hv.Severity) int {
	switch s {
	case hv.SeverityCritical:
		return 0
	case hv.SeverityWarning:
		return 1
	}
	return 2
}

func (f *Filter) match(r *alertRow) bool {
	if (f.State != "" && r.State != f.State) || (f.Severity != "" && r.Severity != f.Severity) ||
		(f.Rule != "" && r.Rule != f.Rule) {
		return false
	}
	if f.EPCI != nil && !slices.Contains(f.EPCI, r.Labels["epci"]) {
		return false
	}
	for k, v := range f.Labels {
		if r.Labels[k] != v {
			return false
		}
	}
	return true
}

// Alert returns one alert by id (its fingerprint) with its history, oldest event first.
func (m *Manager) Alert(ctx context.Context, id string) (Alert, error) {
	h, err := parseFingerprint(id)
	if err != nil {
		return Alert{}, fmt.Errorf("get alert %q: %w", id, err)
	}
	m.mu.Lock()
	e, ok := m.all[h]
	var a Alert
	var queued []Event
	if ok {
		a = e.view()
		for _, ev := range m.events { // not yet written: a store write failed
			if ev.fp == e.Fingerprint {
				queued = append(queued, ev.ev)
			}
		}
	}
	m.mu.Unlock()
	if !ok {
		row, found, err := m.store.alert(ctx, id)
		if err != nil {
			return Alert{}, fmt.Errorf("get alert %s: %w", id, err)
		}
		if !found {
			return Alert{}, fmt.Errorf("get alert %s: %w", id, ErrNotFound)
		}
		a = rowView(&row)
	}
	hist, err := m.store.history(ctx, id)
	if err != nil {
		return Alert{}, fmt.Errorf("get alert %s: %w", id, err)
	}
	a.History = append(hist, queued...)
	return a, nil
}

// rowView is the view of a stored alert not held in memory.
func rowView(r *alertRow) Alert {
	e := entry{alertRow: *r}
	return e.view()
}

// Fingerprint returns the ID of the alert of rule for labels.
func Fingerprint(rule string, labels map[string]string) string {
	keys := slices.Sorted(maps.Keys(labels))
	return fingerprintString(hashLabels(rule, labels, keys))
}

// hash is Fingerprint without allocating, for the evaluation path; mu must be held.
func (m *Manager) hash(rule string, labels map[string]string) uint64 {
	keys := m.keyBuf[:0]
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	m.keyBuf = keys
	return hashLabels(rule, labels, keys)
}

// FNV-1a, 64 bits, with a 0xff separator (a byte no UTF-8 string holds) after each part, so that
// ("ab","c") and ("a","bc") differ.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func hashLabels(rule string, labels map[string]string, sortedKeys []string) uint64 {
	h := hashPart(fnvOffset, rule)
	for _, k := range sortedKeys {
		h = hashPart(h, k)
		h = hashPart(h, labels[k])
	}
	return h
}

func hashPart(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= fnvPrime
	}
	h ^= 0xff
	h *= fnvPrime
	return h
}

func fingerprintString(h uint64) string {
	const digits = "0123456789abcdef"
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = digits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

func parseFingerprint(id string) (uint64, error) {
	h, err := strconv.ParseUint(id, 16, 64)
	if err != nil || len(id) != 16 {
		return 0, fmt.Errorf("not an alert id (16 hex digits): %w", ErrNotFound)
	}
	return h, nil
}

func maxTime(ts ...time.Time) time.Time {
	var m time.Time
	for _, t := range ts {
		if t.After(m) {
			m = t
		}
	}
	return m
}
