package rules_test

// The default rules against the simulators' faults, on simulated time and through the real service path: a
// simulated fleet with 13 months of clean hourly history in an embedded TSDB, then the live fleet's MQTT
// messages through the ingest pipeline (decoders, normalisation, counters) into that store, every stored
// batch observed by the rules engine, the alerts kept by the Manager in SQLite. Time is simulated: the
// runner, ingest's timestamps and every evaluation take it as an argument, and nothing sleeps.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/internal/testenv"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/simulators/model"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// liveStart is where the history ends and the live fleet starts: Friday 17 January 2025 at noon in Paris, a
// winter working week behind (the references of the baseload rules), a weekend ahead, and a long night the
// same evening for the street-lighting faults. Noon keeps the hour where the hourly history hands over to
// the live reports (that hour's bucket holds two hours of consumption) away from the night windows.
var liveStart = time.Date(2025, 1, 17, 12, 0, 0, 0, model.Paris())

// liveStep is how far simulated time moves at a time: the fleet reports what fell due, ingest stores it, the
// streaming rules are evaluated.
const liveStep = 5 * time.Minute

// boundaryHours are the Paris hours at which the day, night and week window rules are evaluated: their
// windows end at midnight (day, weekend, week) or at 05:00 (night), and within a window every evaluation
// gives the same answer (rules/config.go). The leak rule, whose 24 h window slides by the hour, is evaluated
// every hour.
var boundaryHours = []int{0, 5}

// liveFleetOptions is the fleet of the live tests: the CA du Pays de Laon (388 devices), the reference run.
// Under the race detector the simulation runs 5 to 25 times slower (the clean month of the whole EPCI would
// take 7 minutes): it then simulates two of its communes, Athies-sous-Laon and Bruyères-et-Montbérault (35
// devices: schools, a gym, town halls and salles des fêtes with electricity, gas and water meters, 11
// lighting controllers, and the EPCI's weather station, which a commune selection keeps), so that `make
// test` stays in its time budget; the whole EPCI runs without -race (about a minute).
func liveFleetOptions() fleet.Options {
	o := fleet.Options{Seed: 1, EPCIs: []string{"200043495"}}
	if raceEnabled() {
		o.Communes = []string{"02028", "02128"}
	}
	return o
}

// raceEnabled reports whether the test binary was built with -race (its build settings say so).
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// simHistory is a simulated fleet and its clean hourly history up to start, in a closed TSDB directory
// that each scenario copies.
type simHistory struct {
	fleet    *fleet.Fleet
	reg      *registry.Registry
	dir      string
	start    time.Time
	readings int64
}

// newSimHistory generates the fleet and backfills its 13 months of clean history before start
// (simulators.History, as `hyperviseur demo` does) into a TSDB under tb's temporary directory.
func newSimHistory(tb testing.TB, opts fleet.Options, start time.Time) *simHistory {
	tb.Helper()
	tr, err := registry.DefaultTerritory()
	if err != nil {
		tb.Fatal(err)
	}
	f, reg, err := fleet.Load(tr, opts)
	if err != nil {
		tb.Fatal(err)
	}
	h := &simHistory{fleet: f, reg: reg, dir: filepath.Join(tb.TempDir(), "history"), start: start}
	st, err := tsdb.Open(h.dir, tsdb.Options{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	from := start.AddDate(-1, -1, 0)
	hist := simulators.NewRunner(f, 1, from).History(nil)
	if err := hv.Backfill(context.Background(), st, from.UnixMilli(), start.UnixMilli(), hist.Fill); err != nil {
		tb.Fatal(err)
	}
	h.readings = hist.Emitted()
	if err := st.Close(); err != nil {
		tb.Fatal(err)
	}
	return h
}

// open copies the history into dir and opens it.
func (h *simHistory) open(tb testing.TB, dir string) *tsdb.Store {
	tb.Helper()
	err := filepath.WalkDir(h.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(h.dir, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if d.Name() == "lock" {
			return nil
		}
		return copyFile(p, dst)
	})
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tsdb.Open(dir, tsdb.Options{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	return st
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ingestPath is the service's ingest: the four sources of configs/hyperviseur.yaml, the pipeline and a
// writer into store whose stored batches go to onStored. handle waits until every message is stored.
type ingestPath struct {
	tb       testing.TB
	sources  []*ingest.Source
	pipeline *ingest.Pipeline

	mu       sync.Mutex
	dead     []string // dead-lettered messages
	spooled  int      // readings the store refused
	messages int
}

func newIngestPath(tb testing.TB, reg *registry.Registry, store hv.Store, counters *ingest.Counters, onStored func([]hv.Reading)) *ingestPath {
	tb.Helper()
	p := &ingestPath{tb: tb}
	log := slog.New(slog.DiscardHandler)
	metrics := ingest.NewMetrics(prometheus.NewRegistry())
	// One writer keeps the batches in order; a short flush interval keeps the wait for a step's last batch
	// short (the writer flushes on real time).
	w := ingest.NewWriter(ingest.WriterConfig{BatchSize: 5000, FlushInterval: 200 * time.Microsecond, Writers: 1,
		QueueSize: 1024, WriteTimeout: time.Minute}, store, countingSpool{p}, metrics, log, onStored)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, time.Minute); close(done) }()
	tb.Cleanup(func() { stop(); <-done })
	for _, s := range []struct{ name, topic, format string }{
		{"hv", "hv/+/up", "json"}, {"lp", "hv/lp", "lineprotocol"},
		{"chirpstack", "application/+/device/+/event/up", "chirpstack"}, {"tts", "v3/+/devices/+/up", "tts"},
	} {
		src, err := ingest.NewSource(s.name, s.topic, s.format)
		if err != nil {
			tb.Fatal(err)
		}
		p.sources = append(p.sources, src)
	}
	// The pipeline judges timestamps against the wall clock: simulated time is long past, and this store
	// keeps everything.
	forever := 100 * 365 * 24 * time.Hour
	p.pipeline = ingest.NewPipeline(ingest.Config{MaxPayload: 64 << 10, MaxFuture: forever, Retention: forever},
		reg.Lookup, nil, &decode.Mapper{Profiles: reg.Profiles()}, counters, w, func(_ context.Context, _ string, msg []byte) error {
			p.mu.Lock()
			p.dead = append(p.dead, string(msg))
			p.mu.Unlock()
			return nil
		}, metrics, log)
	return p
}

// handle runs messages through the pipeline and returns once every one is stored and observed.
func (p *ingestPath) handle(msgs []simulators.Message) {
	var wg sync.WaitGroup
	for _, m := range msgs {
		i := slices.IndexFunc(p.sources, func(s *ingest.Source) bool { return ingest.TopicMatch(s.Topic, m.Topic) })
		if i < 0 {
			p.tb.Fatalf("no source subscribes to %s", m.Topic)
		}
		wg.Add(1)
		if err := p.pipeline.Handle(context.Background(), p.sources[i], m.Topic, m.Payload, wg.Done); err != nil {
			p.tb.Fatal(err)
		}
	}
	wg.Wait()
	p.mu.Lock()
	p.messages += len(msgs)
	p.mu.Unlock()
}

// check fails tb if any message was dead-lettered or any reading refused by the store.
func (p *ingestPath) check(tb testing.TB) {
	tb.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.dead) > 0 {
		tb.Errorf("%d messages dead-lettered, the first: %s", len(p.dead), p.dead[0])
	}
	if p.spooled > 0 {
		tb.Errorf("the store refused %d readings", p.spooled)
	}
}

// countingSpool stands for the spool: the store must take everything, so whatever reaches it is counted
// as a failure.
type countingSpool struct{ p *ingestPath }

func (s countingSpool) Append(rs []hv.Reading) error {
	s.p.mu.Lock()
	s.p.spooled += len(rs)
	s.p.mu.Unlock()
	return nil
}

func (countingSpool) Replay(context.Context, func(context.Context, []hv.Reading) error) (int, error) {
	return 0, nil
}
func (countingSpool) Bytes() int64 { return 0 }
func (countingSpool) Pending() int { return 0 }

// commandBook is what the test commanded the lighting controllers, by program or override: the engine's
// Deps.Commanded. A controller it knows nothing of is not judged by dimming_failure.
type commandBook struct {
	mu        sync.Mutex
	programs  map[string][]lighting.Step
	until     map[string]time.Time
	overrides map[string][]commandSpan
}

type commandSpan struct {
	level       float64
	from, until time.Time
}

func newCommandBook() *commandBook {
	return &commandBook{programs: map[string][]lighting.Step{}, until: map[string]time.Time{}, overrides: map[string][]commandSpan{}}
}

// commanded is a rules.CommandedFunc: the override in force, else the program's step.
func (b *commandBook) commanded(device string, at time.Time) (float64, time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range slices.Backward(b.overrides[device]) {
		if !at.Before(o.from) && at.Before(o.until) {
			return o.level, o.from, true
		}
	}
	steps := b.programs[device]
	i := sort.Search(len(steps), func(i int) bool { return steps[i].At.After(at) }) - 1
	if i < 0 || !at.Before(b.until[device]) {
		return 0, time.Time{}, false
	}
	return steps[i].Level, steps[i].At, true
}

// sim is the service on simulated time over a copy of a history.
type sim struct {
	tb     testing.TB
	h      *simHistory
	store  *tsdb.Store
	runner *simulators.Runner
	in     *ingestPath
	state  *live.State
	mgr    *rules.Manager
	cmds   *commandBook
	now    time.Time

	streaming *rules.Engine // streaming rules and silence: every step
	hourly    *rules.Engine // leak: every hour
	windows   *rules.Engine // day, night and week windows: at boundaryHours

	mu       sync.Mutex
	readings int
}

// newSim opens a copy of h's history and readies the live fleet to report from where it ends: indexes
// resumed from the store (Runner.Resume), ingest's counters restored from it, as the service restores them.
func newSim(tb testing.TB, h *simHistory) *sim {
	tb.Helper()
	ctx := context.Background()
	dir := tb.TempDir()
	s := &sim{tb: tb, h: h, store: h.open(tb, filepath.Join(dir, "tsdb")), state: live.New(), cmds: newCommandBook(), now: h.start}
	last, err := s.store.Last(ctx, hv.CumulativeMetrics(), h.start.AddDate(0, 0, -1).UnixMilli())
	if err != nil {
		tb.Fatal(err)
	}
	if len(last) == 0 {
		tb.Fatal("no index in the history")
	}
	s.runner = simulators.NewRunner(h.fleet, 1, h.start)
	s.runner.Resume(last)
	counters := ingest.NewCounters()
	counters.Restore(last)

	set, err := rules.LoadRulesFS(configs.Rules(), h.reg, rules.Deps{LastSeen: s.state.LastSeen, Commanded: s.cmds.commanded})
	if err != nil {
		tb.Fatal(err)
	}
	if len(set.Inactive) > 0 {
		tb.Fatalf("inactive rules: %v", set.Inactive)
	}
	var silence []string
	var streaming, hourly, windows []rules.Rule
	for _, r := range set.Rules {
		kind := r.(interface{ Kind() string }).Kind()
		_, observer := r.(rules.Observer)
		switch {
		case kind == rules.KindSilence:
			silence = append(silence, r.Name())
			streaming = append(streaming, r)
		case observer:
			streaming = append(streaming, r)
		case kind == rules.KindLeak:
			hourly = append(hourly, r)
		default:
			windows = append(windows, r)
		}
	}
	db, err := rules.OpenSQLite(filepath.Join(dir, "state.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	s.mgr, err = rules.NewManager(ctx, db, nil, rules.LookupTopology(h.reg.Lookup), nil, rules.Options{SilenceRules: silence})
	if err != nil {
		tb.Fatal(err)
	}
	engine := func(rs []rules.Rule, every time.Duration) *rules.Engine {
		e, err := rules.NewEngine(rules.EngineConfig{Every: every}, &rules.RuleSet{Rules: rs}, nil, s.mgr, s.store, nil)
		if err != nil {
			tb.Fatal(err)
		}
		return e
	}
	s.streaming, s.hourly, s.windows = engine(streaming, liveStep), engine(hourly, time.Hour), engine(windows, time.Hour)
	s.in = newIngestPath(tb, h.reg, s.store, counters, func(rs []hv.Reading) {
		s.state.Update(rs)
		s.streaming.Observe(rs)
		s.mu.Lock()
		s.readings += len(rs)
		s.mu.Unlock()
	})
	return s
}

// run moves simulated time to end, step by step: at (when not nil) acts at the step's time, the fleet
// reports what fell due, ingest stores it, and the rules are evaluated on their cadence.
func (s *sim) run(end time.Time, at func(now time.Time)) {
	ctx := context.Background()
	for t := s.now.Add(liveStep); !t.After(end); t = t.Add(liveStep) {
		if at != nil {
			at(t)
		}
		s.in.handle(s.runner.Due(t))
		s.streaming.EvalAll(ctx, t)
		if t.Truncate(time.Hour).Equal(t) {
			s.hourly.EvalAll(ctx, t)
			if slices.Contains(boundaryHours, t.In(model.Paris()).Hour()) {
				s.windows.EvalAll(ctx, t)
			}
		}
		s.now = t
	}
}

// check fails tb on any ingest or store problem and on any rule evaluation error.
func (s *sim) check(tb testing.TB) {
	tb.Helper()
	s.in.check(tb)
	if st := s.store.Stats(); st != (tsdb.Stats{}) {
		tb.Errorf("the store skipped readings: %+v", st)
	}
	for _, e := range []*rules.Engine{s.streaming, s.hourly, s.windows} {
		st, _ := e.Status()
		for _, r := range st {
			if r.Health == "error" {
				tb.Errorf("rule %s: %s", r.Name, r.LastError)
			}
		}
	}
}

// firedAlert is an alert that fired at least once, with how many times.
type firedAlert struct {
	rules.Alert
	firings   int
	firstFire time.Time
}

func (a firedAlert) String() string {
	keys := slices.Sorted(maps.Keys(a.Labels))
	for i, k := range keys {
		keys[i] = k + "=" + a.Labels[k]
	}
	n := ""
	if a.firings > 1 {
		n = fmt.Sprintf(" (fired %d times)", a.firings)
	}
	return fmt.Sprintf("%s{%s} fired %s%s: %s", a.Rule, strings.Join(keys, ", "),
		a.firstFire.In(model.Paris()).Format("Mon 02/01 15:04"), n, a.Summary)
}

// fired lists every alert that fired (firing still, or resolved since), whatever its silencing or
// suppression, with its firings counted from its history.
func (s *sim) fired() []firedAlert {
	ctx := context.Background()
	as, err := s.mgr.Alerts(ctx, rules.Filter{Limit: 1 << 20})
	if err != nil {
		s.tb.Fatal(err)
	}
	var out []firedAlert
	for _, a := range as {
		if a.FiredAt.IsZero() {
			continue
		}
		full, err := s.mgr.Alert(ctx, a.Fingerprint)
		if err != nil {
			s.tb.Fatal(err)
		}
		fa := firedAlert{Alert: full}
		for _, ev := range full.History {
			if ev.Kind == rules.EventFiring {
				fa.firings++
				if fa.firstFire.IsZero() || ev.At.Before(fa.firstFire) {
					fa.firstFire = ev.At
				}
			}
		}
		out = append(out, fa)
	}
	slices.SortFunc(out, func(a, b firedAlert) int { return a.firstFire.Compare(b.firstFire) })
	return out
}

// TestDefaultRulesLive proves the default rules (configs/rules/default.yaml) against the simulators' faults
// and measures their false positives on the clean fleet over a month, both on simulated time through the
// real ingest path (see the top of this file).
func TestDefaultRulesLive(t *testing.T) {
	testenv.Slow(t, "13 months of history of a simulated fleet, then weeks of it live: a minute or two")
	h := newSimHistory(t, liveFleetOptions(), liveStart)
	t.Logf("%d devices, %d readings of hourly history to %s", len(h.reg.Devices()), h.readings,
		h.start.Format("Mon 02/01/2006 15:04 MST"))
	t.Run("faults", func(t *testing.T) { testFaults(t, h) })
	t.Run("clean-month", func(t *testing.T) { testCleanMonth(t, h) })
}

// faultCase is one fault of the simulators and the alert it must raise.
type faultCase struct {
	kind  simulators.FaultKind
	pick  func(t testing.TB, h *simHistory) string // the device it goes to
	from  time.Time
	until time.Time // zero: until the run ends
	rule  string    // the one alert of the whole fleet, on the device
	by    time.Time // it must have fired by then: the fault's start and the rule's window
	end   time.Time // the run's end
	// act, when set, acts on the fleet during the run (the commands of dimming_failure).
	act func(s *sim, device string) func(now time.Time)
}

// liveAt is day d after liveStart at hh:mm in Paris.
func liveAt(d, hh, mm int) time.Time {
	y, m, dd := liveStart.Date()
	return time.Date(y, m, dd+d, hh, mm, 0, 0, model.Paris())
}

// testFaults injects each fault into one device of a fresh copy of the fleet and its history, runs the
// fleet live long enough for the rule's window, and checks that exactly one alert fired in the whole fleet:
// the fault's, on that device, in time.
func testFaults(t *testing.T, h *simHistory) {
	var (
		controller = func(d hv.Device, _ hv.Site) bool { return d.Kind == hv.DeviceLightingController }
		// A building's meter of fluid, in a building of one of usages.
		meter = func(fluid hv.Fluid, usages ...string) func(hv.Device, hv.Site) bool {
			return func(d hv.Device, s hv.Site) bool {
				return d.Kind == hv.DeviceMeter && d.Fluid == fluid && slices.Contains(usages, s.Usage)
			}
		}
	)
	tests := []faultCase{{
		// A running cistern, 0.2 m³/h from Friday noon, in a school small enough for 0.2 m³/h to be far
		// above its zero-flow level: no hour of the next 24 reaches zero.
		kind: simulators.FaultLeak, rule: "fuite-eau",
		pick: func(t testing.TB, h *simHistory) string {
			return h.pick(t, "the water meter of a school under 2 500 m²", func(d hv.Device, s hv.Site) bool {
				return meter(hv.Water, model.UsageEcole)(d, s) && s.SurfaceM2 < 2500
			})
		},
		from: liveAt(0, 12, 0), by: liveAt(1, 13, 0), end: liveAt(1, 13, 0),
	}, {
		// The heating of a gas-heated school runs all weekend as on a working day: judged at Monday 00:00,
		// once the weekend is complete.
		kind: simulators.FaultHeatingWeekend, rule: "chauffage-week-end",
		pick: func(t testing.TB, h *simHistory) string {
			return h.pick(t, "the gas meter of a school", meter(hv.Gas, model.UsageEcole))
		},
		from: liveAt(0, 12, 0), by: liveAt(3, 0, 0), end: liveAt(3, 1, 0),
	}, {
		// 30 % of the day's mean power left on from 22:00 to 06:00 in a gas-heated town hall (the rule's
		// scope): judged at 05:00, once the 00:00-05:00 night is complete.
		kind: simulators.FaultNightOverconsumption, rule: "talon-nuit-electricite",
		pick: func(t testing.TB, h *simHistory) string {
			fluids := h.siteFluids()
			return h.pick(t, "the electricity meter of a gas-heated town hall", func(d hv.Device, s hv.Site) bool {
				return meter(hv.Electricity, model.UsageMairie)(d, s) && slices.Contains(fluids[s.ID], hv.Gas)
			})
		},
		from: liveAt(0, 22, 0), until: liveAt(1, 6, 0), by: liveAt(1, 5, 0), end: liveAt(1, 6, 0),
	}, {
		// Lights on at 100 % in the early afternoon (sunset is at 17:15): burning from the first report,
		// firing 15 minutes later (the rule's for).
		kind: simulators.FaultDayBurner, rule: "eclairage-jour",
		pick: func(t testing.TB, h *simHistory) string { return h.pick(t, "a lighting controller", controller) },
		from: liveAt(0, 12, 0), until: liveAt(0, 15, 0), by: liveAt(0, 12, 30), end: liveAt(0, 15, 0),
	}, {
		// 30 % of the luminaires out from 18:00, when the lights go full on: the controller's alarm and a
		// power 30 % short, firing 10 minutes later.
		kind: simulators.FaultLampFailure, rule: "panne-lampes",
		pick: func(t testing.TB, h *simHistory) string { return h.pick(t, "a lighting controller", controller) },
		from: liveAt(0, 18, 0), by: liveAt(0, 18, 20), end: liveAt(0, 19, 0),
	}, {
		// A controller stuck at 100 % from 18:00; at 18:30 it and a healthy controller are both commanded to
		// 30 % until 20:30. Both ack; only the stuck one must raise, 15 minutes (ack window) and 10 (for)
		// after the command.
		kind: simulators.FaultDimmingFailure, rule: "gradation-non-appliquee",
		pick: func(t testing.TB, h *simHistory) string { return h.pick(t, "a lighting controller", controller) },
		from: liveAt(0, 18, 0), until: liveAt(0, 21, 0), by: liveAt(0, 19, 5), end: liveAt(0, 19, 30),
		act: func(s *sim, device string) func(time.Time) {
			healthy := s.h.pick(s.tb, "a second lighting controller", controller, device)
			at, until := liveAt(0, 18, 30), liveAt(0, 20, 30)
			return func(now time.Time) {
				if now.Equal(at) {
					s.command(device, 30, at, until)
					s.command(healthy, 30, at, until)
				}
			}
		},
	}, {
		// A street-light controller (one per cabinet) silent from 12:30 to 14:00, its reports kept and sent
		// when it comes back: muted after 30 minutes (3 intervals of 5 minutes, at least 30 minutes).
		kind: simulators.FaultOffline, rule: "appareil-muet",
		pick: func(t testing.TB, h *simHistory) string { return h.pick(t, "a lighting controller", controller) },
		from: liveAt(0, 12, 30), until: liveAt(0, 14, 0), by: liveAt(0, 13, 5), end: liveAt(0, 14, 30),
	}, {
		// A town hall's electricity meter replaced at 12:30, its index restarting at 0: ingest flags a reset
		// at the first report after it.
		kind: simulators.FaultIndexReset, rule: "index-anomalie",
		pick: func(t testing.TB, h *simHistory) string {
			return h.pick(t, "the electricity meter of a town hall", meter(hv.Electricity, model.UsageMairie))
		},
		from: liveAt(0, 12, 30), by: liveAt(0, 12, 45), end: liveAt(0, 13, 30),
	}}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			s := newSim(t, h)
			device := tt.pick(t, h)
			if err := s.runner.Inject(simulators.Fault{Kind: tt.kind, Device: device, From: tt.from, Until: tt.until}); err != nil {
				t.Fatal(err)
			}
			var act func(time.Time)
			if tt.act != nil {
				act = tt.act(s, device)
			}
			s.run(tt.end, act)
			s.check(t)
			found := false
			for _, a := range s.fired() {
				if a.Rule != tt.rule || a.Labels["device"] != device || found {
					t.Errorf("unexpected alert: %v", a)
					continue
				}
				found = true
				switch {
				case a.firstFire.Before(tt.from):
					t.Errorf("%s fired at %s, before the fault (%s)", tt.rule, a.firstFire, tt.from)
				case a.firstFire.After(tt.by):
					t.Errorf("%s fired at %s, later than %s", tt.rule, a.firstFire, tt.by)
				}
				t.Logf("%s on %s from %s: %v (%s after the fault's start)", tt.kind, device,
					tt.from.Format("Mon 02/01 15:04"), a, a.firstFire.Sub(tt.from))
			}
			if !found {
				t.Errorf("%s on %s from %s: %s did not fire by %s (run to %s)", tt.kind, device,
					tt.from.Format("Mon 02/01 15:04"), tt.rule, tt.by.Format("Mon 02/01 15:04"), tt.end.Format("Mon 02/01 15:04"))
			}
		})
	}
}

// command sends a controller the command to hold level over [from, until), as the service would on
// hv/<device>/cmd, and records it for the engine; the controller must ack it.
func (s *sim) command(device string, level float64, from, until time.Time) {
	s.tb.Helper()
	payload, err := json.Marshal(lighting.CommandMsg{ID: fmt.Sprintf("test-%s-%d", device, from.Unix()), Level: level, Until: until})
	if err != nil {
		s.tb.Fatal(err)
	}
	b, err := s.runner.ApplyCommand(device, payload, from)
	if err != nil {
		s.tb.Fatal(err)
	}
	var ack lighting.Ack
	if err := json.Unmarshal(b, &ack); err != nil || ack.Status != lighting.AckOK {
		s.tb.Fatalf("command to %s: ack %s (%v)", device, b, err)
	}
	s.cmds.mu.Lock()
	s.cmds.overrides[device] = append(s.cmds.overrides[device], commandSpan{level, from, until})
	s.cmds.mu.Unlock()
}

// program pushes a controller a program (hv/<device>/program) and records it for the engine.
func (s *sim) program(p lighting.Program, at time.Time) {
	s.tb.Helper()
	payload, err := json.Marshal(p)
	if err != nil {
		s.tb.Fatal(err)
	}
	if _, err := s.runner.ApplyProgram(p.Device, payload, at); err != nil {
		s.tb.Fatal(err)
	}
	s.cmds.mu.Lock()
	s.cmds.programs[p.Device], s.cmds.until[p.Device] = p.Steps, p.Until
	s.cmds.mu.Unlock()
}

// sunProgram is a street-lighting program over [from, to) following the sun at the cabinet: full at sunset,
// half from 23:00, full again from 06:00 when the sun is not up yet, off at sunrise.
func sunProgram(device string, site hv.Site, from, to time.Time) lighting.Program {
	p := lighting.Program{Device: device, Version: 1, Until: to}
	add := func(at time.Time, level float64) {
		if at.Before(to) && (len(p.Steps) == 0 || at.After(p.Steps[len(p.Steps)-1].At)) {
			p.Steps = append(p.Steps, lighting.Step{At: at, Level: level})
		}
	}
	paris := model.Paris()
	y, m, d := from.In(paris).Date()
	for day := time.Date(y, m, d-1, 0, 0, 0, 0, paris); day.Before(to); day = day.AddDate(0, 0, 1) {
		next := day.AddDate(0, 0, 1)
		today, tomorrow := sun.Compute(day, site.Lat, site.Lon, paris), sun.Compute(next, site.Lat, site.Lon, paris)
		add(today.Sunset, 100)
		add(time.Date(day.Year(), day.Month(), day.Day(), 23, 0, 0, 0, paris), 50)
		if six := time.Date(next.Year(), next.Month(), next.Day(), 6, 0, 0, 0, paris); tomorrow.Sunrise.After(six) {
			add(six, 100)
		}
		add(tomorrow.Sunrise, 0)
	}
	return p
}

// testCleanMonth runs the fleet without faults for 30 days and counts every alert that fires. The lighting
// controllers run a program that follows the sun, known to the engine, so that dimming_failure judges every
// controller all month and day_burner sees lights switched at sunset and sunrise.
func testCleanMonth(t *testing.T, h *simHistory) {
	s := newSim(t, h)
	end := h.start.AddDate(0, 0, 30)
	for _, d := range h.devices() {
		if d.Kind == hv.DeviceLightingController {
			site, _ := h.reg.Site(d.Site)
			s.program(sunProgram(d.ID, site, h.start, end), h.start)
		}
	}
	s.run(end, nil)
	s.check(t)
	s.in.mu.Lock()
	messages := s.in.messages
	s.in.mu.Unlock()
	s.mu.Lock()
	t.Logf("%d messages, %d readings stored and observed from %s to %s", messages, s.readings,
		h.start.Format("02/01/2006 15:04"), end.Format("02/01/2006 15:04"))
	s.mu.Unlock()

	fired := s.fired()
	type count struct{ alerts, firings int }
	byRule := map[string]*count{}
	var names []string
	for _, e := range []*rules.Engine{s.streaming, s.hourly, s.windows} {
		for _, n := range e.RuleNames() {
			byRule[n] = &count{}
			names = append(names, n)
		}
	}
	for _, a := range fired {
		c := byRule[a.Rule]
		c.alerts++
		c.firings += a.firings
	}
	var b strings.Builder
	fmt.Fprintf(&b, "false positives over 30 days of %d devices:\n%-34s %6s %8s\n", len(h.reg.Devices()), "rule", "alerts", "firings")
	var total count
	for _, n := range names {
		c := byRule[n]
		total.alerts += c.alerts
		total.firings += c.firings
		fmt.Fprintf(&b, "%-34s %6d %8d\n", n, c.alerts, c.firings)
	}
	fmt.Fprintf(&b, "%-34s %6d %8d", "total", total.alerts, total.firings)
	t.Log(b.String())
	if len(fired) > 0 {
		list := make([]string, len(fired))
		for i, a := range fired {
			list[i] = a.String() + s.context(a.Alert, h.start, end)
		}
		t.Errorf("%d alerts fired on the clean fleet:\n%s", len(fired), strings.Join(list, "\n"))
	}
}

// context says, for the reader of a clean-month alert on a device, how its building is heated and how
// close the device's power came to the site's subscribed power over [from, to).
func (s *sim) context(a rules.Alert, from, to time.Time) string {
	d, site, ok := s.h.reg.Lookup(a.Labels["device"])
	if !ok {
		return ""
	}
	var out []string
	if site.Kind == hv.SiteBuilding {
		heating := "electricity"
		if fl := s.h.siteFluids()[site.ID]; slices.Contains(fl, hv.Gas) || slices.Contains(fl, hv.Heat) {
			heating = "gas or the heat network"
		}
		out = append(out, "building heated by "+heating)
	}
	ss, err := s.store.Query(context.Background(), hv.Query{Metric: hv.PowerW, Devices: []string{d.ID}, From: from.UnixMilli(), To: to.UnixMilli()})
	if err == nil && len(ss) == 1 && site.SubscribedKVA > 0 {
		var peak hv.Point
		for _, p := range ss[0].Points {
			if p.Value > peak.Value {
				peak = p
			}
		}
		out = append(out, fmt.Sprintf("power peaked at %.0f %% of the subscribed %g kVA (%s)", peak.Value/site.SubscribedKVA/10,
			site.SubscribedKVA, time.UnixMilli(peak.Time).In(model.Paris()).Format("Mon 02/01 15:04")))
	}
	if len(out) == 0 {
		return ""
	}
	return "\n    (" + strings.Join(out, "; ") + ")"
}

// devices lists the fleet's devices sorted by id.
func (h *simHistory) devices() []hv.Device {
	ds := h.reg.Devices()
	slices.SortFunc(ds, func(a, b hv.Device) int { return strings.Compare(a.ID, b.ID) })
	return ds
}

// siteFluids maps each site to the fluids its meters measure.
func (h *simHistory) siteFluids() map[string][]hv.Fluid {
	out := map[string][]hv.Fluid{}
	for _, d := range h.reg.Devices() {
		if d.Kind == hv.DeviceMeter && !slices.Contains(out[d.Site], d.Fluid) {
			out[d.Site] = append(out[d.Site], d.Fluid)
		}
	}
	return out
}

// pick returns the first device by id that ok accepts, but those of skip.
func (h *simHistory) pick(tb testing.TB, what string, ok func(hv.Device, hv.Site) bool, skip ...string) string {
	tb.Helper()
	for _, d := range h.devices() {
		if s, _ := h.reg.Site(d.Site); ok(d, s) && !slices.Contains(skip, d.ID) {
			return d.ID
		}
	}
	tb.Fatalf("no %s in the fleet", what)
	return ""
}
