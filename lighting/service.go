package lighting

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting/sun"
	"github.com/useda02/hyperviseur/registry"
)

// Publisher sends a message at QoS 1 and returns once the broker has it (PUBACK).
type Publisher interface {
	Publish(ctx context.Context, topic string, retained bool, payload []byte) error
}

// Options tune command delivery. Zero values take the defaults.
type Options struct {
	AckTimeout  time.Duration    // first resend after it without an ack, then doubling; default 10s
	MaxAttempts int              // sends before giving up on an ack; default 5
	Offline     time.Duration    // a controller unheard this long is offline and its commands wait; default 15m
	Tolerance   float64          // points of %: a reported level this close to the commanded one is measured; default 5
	Nights      int              // nights of program pushed ahead; default 2
	Actor       string           // who the service acts as in the audit log; default "programme"
	Now         func() time.Time // the clock; default time.Now (tests run simulated nights)
}

func (o Options) withDefaults() Options {
	if o.AckTimeout <= 0 {
		o.AckTimeout = 10 * time.Second
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Offline <= 0 {
		o.Offline = 15 * time.Minute
	}
	if o.Tolerance <= 0 {
		o.Tolerance = 5
	}
	if o.Nights <= 0 {
		o.Nights = 2
	}
	if o.Actor == "" {
		o.Actor = "programme"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// StateUnacked is a command sent MaxAttempts times to a controller that is heard but never acknowledged:
// retries stop, and the rules engine judges the reported level against it (dimming_failure).
const StateUnacked = "unacked"

// Service executes lighting control: it resolves each controller's program from the plan and pushes it
// ahead of time, turns overrides into commands, delivers them (retries, offline queue), follows acks and
// reported levels to "measured", and records every step in the audit log.
type Service struct {
	db       *DB
	pub      Publisher
	log      *slog.Logger
	opts     Options
	lastSeen func(device string) int64
	now      func() time.Time

	reg  atomic.Pointer[registry.Registry]
	plan atomic.Pointer[Plan]
	gen  atomic.Int64 // bumped by every plan or registry change: programs are resolved again

	mu       sync.Mutex
	programs map[string]*PushedProgram
	open     map[string]*Command   // open commands by id
	latest   map[string][]*Command // per device: open and recently finished commands, newest last
	reported map[string]*report
	synced   syncKey
	sending  map[string]bool     // commands being published: step runs on the loop and after each new override
	early    map[string]earlyAck // acks that arrived before their publication was recorded

	events chan event // acks and reports, handled by the command loop
	wake   chan struct{}
	sync   chan struct{}
	drops  atomic.Int64
	bad    atomic.Int64

	heardMu sync.Mutex
	heard   map[string]time.Time // when the service last received a reading of each controller
}

// earlyAck is an ack kept until the publication it answers is recorded, so the states and the audit log
// keep the order things happened in (sent, then acked).
type earlyAck struct {
	device string
	ack    Ack
	at     time.Time
}

// takeEarly handles the acks that came in before the publication of id was recorded.
func (s *Service) takeEarly(ctx context.Context, ids ...string) {
	for _, id := range ids {
		s.mu.Lock()
		e, ok := s.early[id]
		delete(s.early, id)
		s.mu.Unlock()
		if ok {
			s.handleAck(ctx, e.device, e.ack, e.at)
		}
	}
}

// report is the last level and power a controller reported, and its last ack.
type report struct {
	level, power     float64
	levelAt, powerAt time.Time
	ackAt            time.Time
}

type syncKey struct {
	night time.Time
	gen   int64
}

// event is something heard from controllers, handled on the command loop so DB writes stay off the MQTT
// and ingest goroutines.
type event struct {
	ack      *Ack
	dlAck    *DownlinkAck
	device   string
	readings []hv.Reading
	at       time.Time
}

// maxKept bounds the finished commands kept in memory per device (the database keeps them all).
const maxKept = 8

// New builds the service and loads its state from db. lastSeen is live.State.LastSeen.
func New(db *DB, pub Publisher, reg *registry.Registry, plan *Plan, lastSeen func(string) int64, opts Options, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{db: db, pub: pub, log: log, opts: opts.withDefaults(), lastSeen: lastSeen,
		programs: map[string]*PushedProgram{}, open: map[string]*Command{}, latest: map[string][]*Command{},
		reported: map[string]*report{}, sending: map[string]bool{}, early: map[string]earlyAck{}, heard: map[string]time.Time{}, events: make(chan event, 8192), wake: make(chan struct{}, 1), sync: make(chan struct{}, 1)}
	s.now = s.opts.Now
	s.reg.Store(reg)
	ctx := context.Background()
	plan, err := s.withEdits(ctx, plan)
	if err != nil {
		return nil, err
	}
	s.plan.Store(plan)
	pushed, err := db.Programs(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pushed {
		s.programs[pushed[i].Device] = &pushed[i]
	}
	cmds, err := db.Commands(ctx, CommandFilter{States: []string{StateScheduled, StateQueued, StateSent, StateAcked, StateUnacked}, Limit: 100000})
	if err != nil {
		return nil, err
	}
	for i := range cmds {
		c := &cmds[i]
		if c.open() { // unacked ones are final, but still say what the controller was told
			s.open[c.ID] = c
		}
		s.latest[c.Device] = append(s.latest[c.Device], c)
	}
	for _, l := range s.latest {
		slices.SortFunc(l, func(a, b *Command) int { return a.Created.Compare(b.Created) })
	}
	return s, nil
}

// withEdits applies the programs edited through the API, kept in the database, on top of a plan from files.
func (s *Service) withEdits(ctx context.Context, plan *Plan) (*Plan, error) {
	edits, err := s.db.ProgramDefs(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range edits {
		var next *Plan
		if e.Def != nil {
			next, err = plan.WithProgram(*e.Def)
		} else {
			next, err = plan.WithoutProgram(e.Name)
		}
		if err != nil { // the file changed under the edit: keep the file's version, say so
			s.log.Warn("lighting program edit no longer applies", "program", e.Name, "err", err)
			continue
		}
		plan = next
	}
	return plan, nil
}

// SetPlan replaces the plan (its files changed), keeping the programs edited through the API; the
// programs that change are pushed at once.
func (s *Service) SetPlan(ctx context.Context, plan *Plan) error {
	plan, err := s.withEdits(ctx, plan)
	if err != nil {
		return err
	}
	s.plan.Store(plan)
	s.audit(ctx, AuditEntry{Actor: s.opts.Actor, Action: "plan.reload", Target: "plan",
		Detail: fmt.Sprintf("%d programmes, %d calendriers, %d groupes", len(plan.Programs), len(plan.Calendars), len(plan.Groups)), Outcome: "ok"})
	s.resync()
	return nil
}

// Plan returns the plan in force.
func (s *Service) Plan() *Plan { return s.plan.Load() }

// Registry returns the registry in force.
func (s *Service) Registry() *registry.Registry { return s.reg.Load() }

// SetRegistry swaps the registry; programs are resolved again.
func (s *Service) SetRegistry(r *registry.Registry) {
	s.reg.Store(r)
	s.resync()
}

func (s *Service) resync() {
	s.gen.Add(1)
	select {
	case s.sync <- struct{}{}:
	default:
	}
}

func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NewID returns a random UUID (version 4): command ids double as LoRaWAN downlink ids, which ChirpStack
// wants as UUIDs.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("lighting: crypto/rand: " + err.Error()) // never fails on Linux ≥ 3.17
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// Run pushes programs and delivers commands until ctx ends.
func (s *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.programLoop(ctx) }()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case e := <-s.events:
			s.handle(ctx, e)
		case <-s.wake:
		case <-t.C:
		}
		s.step(ctx, s.now())
	}
}

// programLoop resolves and pushes programs when the night to cover or the plan changes.
func (s *Service) programLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		if err := s.SyncPrograms(ctx, s.now()); err != nil && ctx.Err() == nil {
			s.log.Error("lighting programs not pushed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.sync:
		}
	}
}

// NightOf is the date of the night in force at t: the evening's local date (before 12:00, yesterday's).
func NightOf(t time.Time) time.Time {
	p := t.In(sun.Paris())
	y, m, d := p.Date()
	if p.Hour() < 12 {
		d--
	}
	return time.Date(y, m, d, 0, 0, 0, 0, sun.Paris())
}

// ProgramAt is the program the service gives dev for the night in force at t (one night, version 1); false
// when dev is in no group. The simulated history uses it to burn as if the service had always run.
func (p *Plan) ProgramAt(dev hv.Device, site hv.Site, t time.Time) (Program, bool) {
	g := p.GroupOf(&dev, &site)
	if g == nil {
		return Program{}, false
	}
	n, err := p.Night(g, NightOf(t), site.Lat, site.Lon)
	if err != nil {
		return Program{}, false
	}
	prog, err := ProgramFrom(dev.ID, 1, n)
	return prog, err == nil
}

// SyncPrograms pushes, to every controller whose resolved program changed, its program for the night in
// force and the next ones (Options.Nights). Unchanged programs are not pushed again.
func (s *Service) SyncPrograms(ctx context.Context, now time.Time) error {
	key := syncKey{NightOf(now), s.gen.Load()}
	s.mu.Lock()
	done := s.synced == key
	s.mu.Unlock()
	if done {
		return nil
	}
	reg, plan := s.reg.Load(), s.plan.Load()
	var pushed, failed, unassigned int
	var firstErr error
	for _, dev := range reg.Devices() {
		if dev.Kind != hv.DeviceLightingController {
			continue
		}
		site, _ := reg.Site(dev.Site)
		g := plan.GroupOf(&dev, &site)
		if g == nil {
			unassigned++
			continue
		}
		ok, err := s.pushProgram(ctx, g, dev, site, key.night, now)
		switch {
		case err != nil:
			failed++
			if firstErr == nil {
				firstErr = err
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, errNotPublished) { // the broker is not taking messages: the next sync tries again
				return fmt.Errorf("push programs (stopped at %s): %w", dev.ID, err)
			}
		case ok:
			pushed++
		}
	}
	if failed == 0 {
		s.mu.Lock()
		s.synced = key
		s.mu.Unlock()
	}
	if pushed > 0 || failed > 0 {
		s.log.Info("lighting programs pushed", "night", key.night.Format(time.DateOnly), "pushed", pushed, "failed", failed,
			"unassigned", unassigned)
	}
	if firstErr != nil {
		return fmt.Errorf("push programs (%d failed): %w", failed, firstErr)
	}
	return nil
}

// ProgramFor resolves a controller's program from the night of date on, with version 0 (not pushed).
func (s *Service) ProgramFor(dev hv.Device, site hv.Site, date time.Time) (Program, *Group, []Night, error) {
	plan := s.plan.Load()
	g := plan.GroupOf(&dev, &site)
	if g == nil {
		return Program{}, nil, nil, fmt.Errorf("program of %s: %w: in no lighting group", dev.ID, ErrNotFound)
	}
	nights := make([]Night, 0, s.opts.Nights)
	for i := range s.opts.Nights {
		n, err := plan.Night(g, date.AddDate(0, 0, i), site.Lat, site.Lon)
		if err != nil {
			return Program{}, g, nil, fmt.Errorf("program of %s: %w", dev.ID, err)
		}
		nights = append(nights, n)
	}
	p, err := ProgramFrom(dev.ID, 1, nights...)
	if err != nil {
		return Program{}, g, nil, fmt.Errorf("program of %s: %w", dev.ID, err)
	}
	p.Version = 0
	return p, g, nights, nil
}

func programHash(p Program) string {
	p.Version = 0
	b, _ := json.Marshal(p)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// pushProgram pushes dev's program when it differs from the one it has; ok says whether it did.
func (s *Service) pushProgram(ctx context.Context, g *Group, dev hv.Device, site hv.Site, night, now time.Time) (bool, error) {
	p, _, nights, err := s.ProgramFor(dev, site, night)
	if err != nil {
		return false, err
	}
	hash := programHash(p)
	s.mu.Lock()
	prev := s.programs[dev.ID]
	s.mu.Unlock()
	if prev != nil && prev.Hash == hash && prev.State != StateDesired {
		return false, nil
	}
	// Versions follow the clock (seconds), so they keep rising even if the state database is lost and the
	// broker still holds a retained program of an earlier life.
	p.Version = now.Unix()
	if prev != nil && p.Version <= prev.Version {
		p.Version = prev.Version + 1
	}
	pp := &PushedProgram{Device: dev.ID, Version: p.Version, Hash: hash, Program: p, State: StateDesired, Created: now.UTC()}
	if dev.Downlink != nil {
		pp.DownlinkID = NewID()
	}
	if err := s.db.SaveProgram(ctx, *pp); err != nil {
		return false, err
	}
	s.mu.Lock()
	s.programs[dev.ID] = pp
	s.mu.Unlock()
	topic, payload, retained, err := s.encode(dev, DownlinkProgram, pp.DownlinkID, p)
	if err == nil {
		err = s.pub.Publish(ctx, topic, retained, payload)
	}
	detail := fmt.Sprintf("groupe %s, programme %s, %d pas, jusqu'au %s", g.Name, nights[0].Program, len(p.Steps),
		p.Until.In(sun.Paris()).Format("02/01 15:04"))
	if err != nil {
		s.audit(ctx, AuditEntry{At: now, Actor: s.opts.Actor, Action: "program.push", Target: dev.ID, Ref: version(p.Version), Detail: detail, Outcome: "échec : " + err.Error()})
		return false, fmt.Errorf("push program to %s: %w: %w", dev.ID, errNotPublished, err)
	}
	s.mu.Lock()
	if pp.State == StateDesired { // its ack may already be in
		pp.State = StateSent
	}
	pp.Sent, pp.Last, pp.Attempts = s.now().UTC(), s.now().UTC(), 1
	cp := *pp
	s.mu.Unlock()
	if err := s.db.SaveProgram(ctx, cp); err != nil {
		return true, err
	}
	s.audit(ctx, AuditEntry{At: now, Actor: s.opts.Actor, Action: "program.push", Target: dev.ID, Ref: version(p.Version), Detail: detail, Outcome: StateSent})
	s.takeEarly(ctx, ProgramAckID(p.Version), pp.DownlinkID)
	return true, nil
}

func version(v int64) string { return fmt.Sprintf("v%d", v) }

// encode returns where and how a program or command goes to dev: hv/<dev>/… or its LoRaWAN network server.
func (s *Service) encode(dev hv.Device, kind, id string, v any) (topic string, payload []byte, retained bool, err error) {
	body, err := json.Marshal(v)
	if err != nil {
		return "", nil, false, err
	}
	if dev.Downlink != nil {
		dl, err := EncodeDownlink(dev.ID, dev.Downlink, kind, id, body)
		return dl.Topic, dl.Payload, false, err
	}
	if kind == DownlinkProgram {
		return ProgramTopic(dev.ID), body, true, nil
	}
	return CommandTopic(dev.ID), body, false, nil
}

func (s *Service) audit(ctx context.Context, e AuditEntry) {
	if e.At.IsZero() {
		e.At = s.now()
	}
	if err := s.db.Audit(ctx, e); err != nil {
		s.log.Error("audit entry lost", "action", e.Action, "target", e.Target, "err", err)
	}
}

// OverrideRequest asks for a level on a group or one device over [From, Until).
type OverrideRequest struct {
	Group  string    `json:"group,omitempty"`
	Device string    `json:"device,omitempty"`
	Level  float64   `json:"level"`
	From   time.Time `json:"from,omitzero"` // zero: now
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// MaxOverride is the longest override: beyond, change the program.
const MaxOverride = 14 * 24 * time.Hour

// Controllers returns the lighting controllers of a group, or the one device, as the registry has them.
func (s *Service) Controllers(group, device string) ([]hv.Device, error) {
	reg, plan := s.reg.Load(), s.plan.Load()
	if device != "" {
		d, _, ok := reg.Device(device)
		if !ok || d.Kind != hv.DeviceLightingController {
			return nil, fmt.Errorf("device %q: %w: no lighting controller of that id", device, ErrNotFound)
		}
		return []hv.Device{d}, nil
	}
	if !slices.ContainsFunc(plan.Groups, func(g Group) bool { return g.Name == group }) {
		return nil, fmt.Errorf("group %q: %w", group, ErrNotFound)
	}
	var out []hv.Device
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceLightingController {
			continue
		}
		site, _ := reg.Site(d.Site)
		if g := plan.GroupOf(&d, &site); g != nil && g.Name == group {
			out = append(out, d)
		}
	}
	return out, nil
}

// CreateOverride validates req, records the override and one command per controller, and sends them at
// once (or at From). allowed says whether the caller may command a device (EPCI scope); a group with a
// device outside it is refused whole.
func (s *Service) CreateOverride(ctx context.Context, req OverrideRequest, actor string, allowed func(hv.Device) bool) (Override, []Command, error) {
	now := s.now().UTC()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("override: %w: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if req.From.IsZero() {
		req.From = now
	}
	switch {
	case (req.Group == "") == (req.Device == ""):
		return Override{}, nil, bad("give exactly one of group and device")
	case !validLevel(req.Level):
		return Override{}, nil, bad("level %v outside [0, 100]", req.Level)
	case !req.Until.After(req.From) || !req.Until.After(now):
		return Override{}, nil, bad("until must be after from and in the future")
	case req.Until.Sub(req.From) > MaxOverride:
		return Override{}, nil, bad("at most %s: change the program instead", MaxOverride)
	case req.From.After(now.Add(MaxOverride)):
		return Override{}, nil, bad("from is more than %s ahead", MaxOverride)
	case req.Reason == "" || len(req.Reason) > 500:
		return Override{}, nil, bad("a reason of 1 to 500 characters is required (it goes to the audit log)")
	}
	devs, err := s.Controllers(req.Group, req.Device)
	if err != nil {
		return Override{}, nil, fmt.Errorf("override: %w", err)
	}
	if len(devs) == 0 {
		return Override{}, nil, bad("group %q has no controller", req.Group)
	}
	for _, d := range devs {
		if allowed != nil && !allowed(d) {
			return Override{}, nil, fmt.Errorf("override: %w: %s is outside your scope", ErrForbidden, d.ID)
		}
	}
	o := Override{ID: NewID(), TargetKind: "group", Target: req.Group, Level: req.Level, From: req.From.UTC(), Until: req.Until.UTC(),
		Actor: actor, Reason: req.Reason, Created: now}
	if req.Device != "" {
		o.TargetKind, o.Target = "device", req.Device
	}
	if err := s.db.SaveOverride(ctx, o); err != nil {
		return Override{}, nil, err
	}
	s.audit(ctx, AuditEntry{At: now, Actor: actor, Action: "override.create", Target: o.Target, Ref: o.ID,
		Detail: fmt.Sprintf("%s %% du %s au %s, %d contrôleur(s) : %s", frLevel(o.Level), frTime(o.From), frTime(o.Until), len(devs), o.Reason), Outcome: "ok"})
	cmds := make([]Command, 0, len(devs))
	for _, d := range devs {
		c := &Command{ID: NewID(), Device: d.ID, OverrideID: o.ID, Level: o.Level, From: o.From, Until: o.Until, Actor: actor,
			State: StateScheduled, Created: now, Updated: now}
		if err := s.db.SaveCommand(ctx, *c); err != nil {
			return o, cmds, err
		}
		s.mu.Lock()
		s.track(c)
		s.mu.Unlock()
		s.audit(ctx, AuditEntry{At: now, Actor: actor, Action: "command.create", Target: d.ID, Ref: c.ID,
			Detail: fmt.Sprintf("%s %% jusqu'au %s (dérogation %s)", frLevel(c.Level), frTime(c.Until), o.ID), Outcome: c.State})
		cmds = append(cmds, *c)
	}
	s.step(ctx, s.now()) // at once, not at the next tick
	return o, cmds, nil
}

// errNotPublished marks a publication the broker did not take.
var errNotPublished = errors.New("not published")

// ErrForbidden marks an action outside the caller's scope.
var ErrForbidden = errors.New("forbidden")

// CancelOverride ends an override early: its open commands are cancelled and each controller is told to go
// back to its program (a command at the program's current level for a few seconds, after which the
// controller's program resumes).
func (s *Service) CancelOverride(ctx context.Context, id, actor string, allowed func(hv.Device) bool) error {
	now := s.now().UTC()
	all, err := s.db.Overrides(ctx, now, 10000)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(all, func(o Override) bool { return o.ID == id })
	if i < 0 || !all[i].Cancelled.IsZero() {
		return fmt.Errorf("override %s: %w (or already ended)", id, ErrNotFound)
	}
	o := all[i]
	cmds, err := s.db.Commands(ctx, CommandFilter{OverrideID: id, Limit: 100000})
	if err != nil {
		return err
	}
	reg := s.reg.Load()
	for _, c := range cmds {
		if d, _, ok := reg.Device(c.Device); ok && allowed != nil && !allowed(d) {
			return fmt.Errorf("override %s: %w: %s is outside your scope", id, ErrForbidden, c.Device)
		}
	}
	o.Cancelled, o.CancelledBy = now, actor
	if err := s.db.SaveOverride(ctx, o); err != nil {
		return err
	}
	s.audit(ctx, AuditEntry{At: now, Actor: actor, Action: "override.cancel", Target: o.Target, Ref: o.ID, Outcome: "ok"})
	for _, c := range cmds {
		// In force at the controller: sent (acked, measured or not) and not yet over. Each is ended as
		// cancelled, in memory too, so the commanded level is the program's again.
		s.mu.Lock()
		live := s.open[c.ID]
		if live == nil {
			if i := slices.IndexFunc(s.latest[c.Device], func(x *Command) bool { return x.ID == c.ID }); i >= 0 {
				live = s.latest[c.Device][i]
			}
		}
		if live != nil {
			c = *live // memory is ahead of the database
		}
		inForce := !c.Sent.IsZero() && now.Before(c.Until) && c.State != StateRejected && c.State != StateExpired &&
			c.State != StateCancelled
		pending := c.State == StateScheduled || c.State == StateQueued
		if live != nil && (inForce || pending) {
			s.finish(live, StateCancelled, "dérogation annulée", now)
			c = *live
		} else if inForce || pending {
			c.State, c.Detail, c.Updated = StateCancelled, "dérogation annulée", now
		}
		s.mu.Unlock()
		if !inForce && !pending {
			continue
		}
		s.save(ctx, c)
		if !inForce {
			continue
		}
		// Back to the program: the level it says now, held a few seconds.
		level, _, ok := s.programLevel(c.Device, now)
		if !ok {
			level = 0
		}
		back := &Command{ID: NewID(), Device: c.Device, OverrideID: o.ID, Level: level, From: now, Until: now.Add(5 * time.Second),
			Actor: actor, State: StateScheduled, Created: now, Updated: now, Detail: "retour au programme"}
		if err := s.db.SaveCommand(ctx, *back); err != nil {
			return err
		}
		s.mu.Lock()
		s.track(back)
		s.mu.Unlock()
	}
	s.poke()
	return nil
}

// track adds a command to the in-memory indexes. s.mu held.
func (s *Service) track(c *Command) {
	s.open[c.ID] = c
	l := append(s.latest[c.Device], c)
	// Drop the oldest finished ones beyond maxKept.
	for len(l) > maxKept {
		i := slices.IndexFunc(l, func(c *Command) bool { return !c.open() && c.State != StateUnacked })
		if i < 0 {
			break
		}
		l = slices.Delete(l, i, i+1)
	}
	s.latest[c.Device] = l
}

// finish moves a command to a final state. s.mu held.
func (s *Service) finish(c *Command, state, detail string, at time.Time) {
	c.State, c.Updated = state, at.UTC()
	if detail != "" {
		c.Detail = detail
	}
	delete(s.open, c.ID)
}

func (s *Service) save(ctx context.Context, c Command) {
	if err := s.db.SaveCommand(ctx, c); err != nil {
		s.log.Error("lighting command state not saved", "command", c.ID, "device", c.Device, "state", c.State, "err", err)
	}
}

// step moves open commands on: starts scheduled ones, sends queued ones to controllers heard again,
// resends unacknowledged ones with backoff, and expires the ones whose period ended.
func (s *Service) step(ctx context.Context, now time.Time) {
	type todo struct {
		c     Command
		send  bool
		entry *AuditEntry
	}
	var work []todo
	reg := s.reg.Load()
	s.mu.Lock()
	for _, c := range s.open {
		if s.sending[c.ID] {
			continue
		}
		switch {
		case !now.Before(c.Until):
			state, detail := StateExpired, "période terminée sans accusé de réception"
			if c.State == StateAcked {
				detail = "période terminée sans que le niveau mesuré le confirme"
			}
			s.finish(c, state, detail, now)
			work = append(work, todo{c: *c, entry: &AuditEntry{Actor: s.opts.Actor, Action: "command.expired", Target: c.Device, Ref: c.ID, Detail: detail, Outcome: state}})
		case c.State == StateScheduled && !now.Before(c.From):
			work = append(work, todo{c: *c, send: true})
		case c.State == StateQueued && s.heardSince(c.Device, c.Updated):
			c.Attempts = 0
			work = append(work, todo{c: *c, send: true})
		case c.State == StateSent && now.Sub(c.Updated) >= s.backoff(c.Attempts):
			if c.Attempts < s.opts.MaxAttempts {
				work = append(work, todo{c: *c, send: true})
				continue
			}
			state, detail := StateUnacked, fmt.Sprintf("aucun accusé de réception après %d envois", c.Attempts)
			if !s.heardSince(c.Device, now.Add(-s.opts.Offline)) {
				state, detail = StateQueued, fmt.Sprintf("hors ligne : aucun accusé après %d envois, en attente de reconnexion", c.Attempts)
			}
			c.State, c.Detail, c.Updated = state, detail, now.UTC()
			if state == StateUnacked {
				delete(s.open, c.ID)
			}
			work = append(work, todo{c: *c, entry: &AuditEntry{Actor: s.opts.Actor, Action: "command.timeout", Target: c.Device, Ref: c.ID, Detail: detail, Outcome: state}})
		}
	}
	var resend []PushedProgram
	for _, p := range s.programs {
		// An unacknowledged program goes out again with backoff (a LoRaWAN downlink can be lost; a retained
		// one is redelivered by the broker anyway, and the controller acks the same version again).
		if p.State == StateSent && p.Attempts < s.opts.MaxAttempts && now.Sub(p.Last) >= s.backoff(p.Attempts) {
			p.Attempts++
			p.Last = now.UTC()
			resend = append(resend, *p)
		}
	}
	for _, w := range work {
		if w.send {
			s.sending[w.c.ID] = true
		}
	}
	s.mu.Unlock()
	for _, p := range resend {
		s.republish(ctx, reg, p, now)
	}
	for _, w := range work {
		if w.send {
			s.send(ctx, reg, w.c, now)
			s.mu.Lock()
			delete(s.sending, w.c.ID)
			s.mu.Unlock()
			s.takeEarly(ctx, w.c.ID)
			continue
		}
		s.save(ctx, w.c)
		w.entry.At = now
		s.audit(ctx, *w.entry)
	}
}

// republish sends a program version again.
func (s *Service) republish(ctx context.Context, reg *registry.Registry, p PushedProgram, now time.Time) {
	dev, _, ok := reg.Device(p.Device)
	if !ok {
		return
	}
	topic, payload, retained, err := s.encode(dev, DownlinkProgram, p.DownlinkID, p.Program)
	if err == nil {
		err = s.pub.Publish(ctx, topic, retained, payload)
	}
	outcome := StateSent
	if err != nil {
		outcome = "échec : " + err.Error()
	}
	if err := s.db.SaveProgram(ctx, p); err != nil {
		s.log.Error("lighting program state not saved", "device", p.Device, "err", err)
	}
	s.audit(ctx, AuditEntry{At: now, Actor: s.opts.Actor, Action: "program.retry", Target: p.Device, Ref: version(p.Version),
		Detail: fmt.Sprintf("envoi %d sans accusé de réception", p.Attempts), Outcome: outcome})
}

func (s *Service) backoff(attempts int) time.Duration {
	return s.opts.AckTimeout << min(max(attempts-1, 0), 10)
}

// heardSince says whether device reported after t.
// A controller is heard when one of its readings is stamped after t, or when the service received one after
// t: a controller sending its backlog after an outage is online now, though its readings are old.
func (s *Service) heardSince(device string, t time.Time) bool {
	if s.lastSeen != nil && s.lastSeen(device) > t.UnixMilli() {
		return true
	}
	s.heardMu.Lock()
	at, ok := s.heard[device]
	s.heardMu.Unlock()
	return ok && at.After(t)
}

// send publishes a command, or queues it when its controller is offline.
func (s *Service) send(ctx context.Context, reg *registry.Registry, c Command, now time.Time) {
	dev, _, ok := reg.Device(c.Device)
	var err error
	state, action := StateSent, "command.sent"
	if c.Attempts > 0 {
		action = "command.retry"
	}
	switch {
	case !ok:
		err = fmt.Errorf("%w: no longer in the registry", ErrNotFound)
	case !s.heardSince(c.Device, now.Add(-s.opts.Offline)) && c.State != StateQueued:
		state, action = StateQueued, "command.queued"
	default:
		var topic string
		var payload []byte
		topic, payload, _, err = s.encode(dev, DownlinkCommand, c.ID, CommandMsg{ID: c.ID, Level: c.Level, Until: c.Until})
		if err == nil {
			err = s.pub.Publish(ctx, topic, false, payload)
		}
	}
	s.mu.Lock()
	live := s.open[c.ID]
	if live == nil { // finished meanwhile (an ack raced the resend, a cancel)
		s.mu.Unlock()
		return
	}
	outcome := state
	switch {
	case err != nil:
		live.Detail, outcome = "envoi impossible : "+err.Error(), "échec : "+err.Error()
		live.Updated = now.UTC() // retried after the backoff
		if live.State == StateScheduled {
			live.State = StateSent
		}
		live.Attempts++
	case state == StateQueued:
		live.State, live.Updated, live.Detail = StateQueued, now.UTC(), "contrôleur hors ligne : envoi à sa reconnexion"
	default:
		// The ack may already be in (it can arrive before Publish returns): never step back from acked.
		if live.State == StateScheduled || live.State == StateQueued || live.State == StateSent {
			live.State = StateSent
		}
		live.Updated = now.UTC()
		live.Attempts++
		if live.Sent.IsZero() {
			live.Sent = now.UTC()
		}
	}
	cp := *live
	s.mu.Unlock()
	s.save(ctx, cp)
	s.audit(ctx, AuditEntry{At: now, Actor: s.opts.Actor, Action: action, Target: c.Device, Ref: c.ID,
		Detail: fmt.Sprintf("%s %% jusqu'au %s, envoi %d", frLevel(c.Level), frTime(c.Until), cp.Attempts), Outcome: outcome})
}

// HandleAck takes a controller's message on hv/<device>/ack (called from the MQTT client's goroutine).
func (s *Service) HandleAck(topic string, payload []byte) {
	device, kind, ok := DeviceOf(topic)
	if !ok || kind != "ack" {
		return
	}
	if d, _, known := s.reg.Load().Device(device); !known || d.Kind != hv.DeviceLightingController {
		s.badAck(device, "not a registered lighting controller")
		return
	}
	var a Ack
	if err := json.Unmarshal(payload, &a); err != nil || a.ID == "" {
		reason := "no id"
		if err != nil {
			reason = err.Error()
		}
		s.badAck(device, reason)
		return
	}
	s.enqueue(event{device: device, ack: &a, at: s.now()})
}

// HandleDownlinkAck takes a LoRaWAN network server's ack, nack or failed event.
func (s *Service) HandleDownlinkAck(topic string, payload []byte) {
	a, err := ParseDownlinkAck(topic, payload)
	if errors.Is(err, ErrNotAck) {
		return
	}
	if err != nil {
		s.badAck(topic, err.Error())
		return
	}
	s.enqueue(event{device: a.Device, dlAck: &a, at: s.now()})
}

// Observe takes stored readings (the writer's hook): reported levels and power of controllers.
func (s *Service) Observe(rs []hv.Reading) {
	var mine []hv.Reading
	for _, r := range rs {
		if r.Metric == hv.LevelPct || (r.Metric == hv.PowerW && r.Fluid == "") {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return
	}
	now := s.now()
	s.heardMu.Lock()
	for _, r := range mine {
		s.heard[r.Device] = now
	}
	s.heardMu.Unlock()
	s.enqueue(event{readings: mine, at: now})
}

func (s *Service) enqueue(e event) {
	select {
	case s.events <- e:
	default: // bounded: a lost ack is made up by the resend, a lost report by the next one
		s.drops.Add(1)
	}
}

// badAck counts an ack the service cannot use; it is logged at the 1st, 2nd, 4th, 8th… occurrence, so a
// device flooding garbage cannot flood the log.
func (s *Service) badAck(from, reason string) {
	if n := s.bad.Add(1); n&(n-1) == 0 {
		s.log.Warn("lighting ack ignored", "from", from, "reason", reason, "ignored_so_far", n)
	}
}

// BadAcks is how many acks were ignored: malformed, or from a device that is no registered controller.
func (s *Service) BadAcks() int64 { return s.bad.Load() }

// Dropped is how many acks and report batches were dropped because the queue was full.
func (s *Service) Dropped() int64 { return s.drops.Load() }

func (s *Service) handle(ctx context.Context, e event) {
	switch {
	case e.ack != nil:
		s.handleAck(ctx, e.device, *e.ack, e.at)
	case e.dlAck != nil:
		status := AckOK
		if !e.dlAck.Delivered {
			status = AckRejected
		}
		s.handleAck(ctx, e.device, Ack{ID: e.dlAck.ID, Status: status, Reason: "non acquitté par le réseau LoRaWAN", Level: math.NaN(), At: e.at}, e.at)
	default:
		s.handleReadings(ctx, e.readings)
	}
}

func (s *Service) handleAck(ctx context.Context, device string, a Ack, at time.Time) {
	s.mu.Lock()
	if r := s.reportOf(device); at.After(r.ackAt) {
		r.ackAt = at
	}
	// A program ack: "program:<version>", or a LoRaWAN downlink id.
	if p := s.programs[device]; p != nil && (a.ID == ProgramAckID(p.Version) || (p.DownlinkID != "" && a.ID == p.DownlinkID)) {
		if p.State == StateDesired { // the ack beat Publish's return: handled once the push is recorded
			s.early[a.ID] = earlyAck{device, a, at}
			s.mu.Unlock()
			return
		}
		if p.State != StateSent {
			s.mu.Unlock()
			return
		}
		p.State, p.Acked = StateAcked, at.UTC()
		if a.Status != AckOK {
			p.State, p.Detail = StateRejected, a.Reason
		}
		cp := *p
		s.mu.Unlock()
		if err := s.db.SaveProgram(ctx, cp); err != nil {
			s.log.Error("lighting program state not saved", "device", device, "err", err)
		}
		s.audit(ctx, AuditEntry{At: at, Actor: device, Action: "program.ack", Target: device, Ref: version(cp.Version), Detail: a.Reason, Outcome: cp.State})
		return
	}
	if s.sending[a.ID] { // the ack beat Publish's return: handled once the send is recorded
		s.early[a.ID] = earlyAck{device, a, at}
		s.mu.Unlock()
		return
	}
	c := s.open[a.ID]
	if c == nil || c.Device != device {
		s.mu.Unlock()
		s.log.Debug("lighting ack for no open command", "device", device, "id", a.ID)
		return
	}
	action := "command.ack"
	if a.Status == AckOK {
		c.State, c.Acked, c.Updated = StateAcked, at.UTC(), at.UTC()
	} else {
		action = "command.rejected"
		s.finish(c, StateRejected, a.Reason, at)
	}
	cp := *c
	s.mu.Unlock()
	s.save(ctx, cp)
	s.audit(ctx, AuditEntry{At: at, Actor: device, Action: action, Target: device, Ref: cp.ID, Detail: a.Reason, Outcome: cp.State})
}

func (s *Service) reportOf(device string) *report {
	r := s.reported[device]
	if r == nil {
		r = &report{level: math.NaN(), power: math.NaN()}
		s.reported[device] = r
	}
	return r
}

// handleReadings records reported levels and moves commands and programs whose level is confirmed to
// measured. A level is confirmed when the controller reports it (within Tolerance) and its power agrees:
// above the standby share of its nominal power when lit, below it when off.
func (s *Service) handleReadings(ctx context.Context, rs []hv.Reading) {
	reg := s.reg.Load()
	var cmds []Command
	var progs []PushedProgram
	s.mu.Lock()
	for _, rd := range rs {
		t := rd.Timestamp()
		r := s.reportOf(rd.Device)
		if rd.Metric == hv.PowerW {
			if t.After(r.powerAt) {
				r.power, r.powerAt = rd.Value, t
			}
			continue
		}
		if t.After(r.levelAt) {
			r.level, r.levelAt = rd.Value, t
		}
		dev, _, ok := reg.Device(rd.Device)
		if !ok || !s.powerAgrees(dev, rd.Value, r, t) {
			continue
		}
		if c := s.commandAt(rd.Device, t); c != nil && (c.State == StateSent || c.State == StateAcked || c.State == StateUnacked) &&
			!t.Before(c.Sent) && math.Abs(rd.Value-c.Level) <= s.opts.Tolerance {
			c.Measured = t.UTC()
			s.finish(c, StateMeasured, "", t)
			cmds = append(cmds, *c)
			continue
		}
		if p := s.programs[rd.Device]; p != nil && (p.State == StateSent || p.State == StateAcked) && !t.Before(p.Sent) &&
			s.commandAt(rd.Device, t) == nil {
			if st, ok := p.Program.StepAt(t); ok && !st.Boost && !st.Lux && math.Abs(rd.Value-st.Level) <= s.opts.Tolerance {
				p.State, p.Measured = StateMeasured, t.UTC()
				progs = append(progs, *p)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range cmds {
		s.save(ctx, c)
		s.audit(ctx, AuditEntry{At: c.Measured, Actor: c.Device, Action: "command.measured", Target: c.Device, Ref: c.ID,
			Detail: fmt.Sprintf("niveau mesuré conforme à %s %%", frLevel(c.Level)), Outcome: StateMeasured})
	}
	for _, p := range progs {
		if err := s.db.SaveProgram(ctx, p); err != nil {
			s.log.Error("lighting program state not saved", "device", p.Device, "err", err)
		}
		s.audit(ctx, AuditEntry{At: p.Measured, Actor: p.Device, Action: "program.measured", Target: p.Device, Ref: version(p.Version), Outcome: StateMeasured})
	}
}

// powerAgrees checks the power reported with the level, when a power reading of about the same time exists.
// s.mu held.
func (s *Service) powerAgrees(dev hv.Device, level float64, r *report, t time.Time) bool {
	if r.powerAt.IsZero() || math.Abs(float64(r.powerAt.Sub(t))) > float64(time.Minute) || dev.MaxPowerW <= 0 {
		return true // nothing to compare with
	}
	standby := 0.05 * dev.MaxPowerW / 1.1
	if level > 0 {
		return r.power > standby
	}
	return r.power <= standby
}

// commandAt is the command in force on device at t: the newest one whose period holds t and that the
// controller may be running (not queued, scheduled, rejected or cancelled). s.mu held.
func (s *Service) commandAt(device string, t time.Time) *Command {
	l := s.latest[device]
	for i := len(l) - 1; i >= 0; i-- {
		c := l[i]
		if t.Before(c.From) || !t.Before(c.Until) || c.Sent.IsZero() || t.Before(c.Sent) {
			continue
		}
		switch c.State {
		case StateSent, StateAcked, StateMeasured, StateUnacked, StateExpired:
			return c
		}
	}
	return nil
}

// programLevel is the pushed program's level for device at t and since when it holds (not before the
// program was sent, nor before the end of the last command); false when no program was sent, or the step
// lets the controller raise its level itself (presence boost, luminosity guard).
func (s *Service) programLevel(device string, t time.Time) (float64, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.programLevelLocked(device, t)
}

func (s *Service) programLevelLocked(device string, t time.Time) (float64, time.Time, bool) {
	p := s.programs[device]
	if p == nil || p.Sent.IsZero() || t.Before(p.Sent) || p.State == StateRejected {
		return 0, time.Time{}, false
	}
	st, ok := p.Program.StepAt(t)
	if !ok || st.Boost || st.Lux {
		return 0, time.Time{}, false
	}
	since := st.At
	if p.Sent.After(since) {
		since = p.Sent
	}
	for _, c := range s.latest[device] {
		if !c.Sent.IsZero() && c.Until.After(since) && !c.Until.After(t) {
			since = c.Until
		}
	}
	return st.Level, since, true
}

// Commanded is the level device was told to run at t and since when (rules.Deps.Commanded): the command in
// force, else its program. ok is false when nothing was sent, or the program lets the controller decide
// (presence boost, luminosity guard).
func (s *Service) Commanded(device string, t time.Time) (float64, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.commandAt(device, t); c != nil {
		return c.Level, c.Sent, true
	}
	return s.programLevelLocked(device, t)
}

// DeviceState is a controller's live state for the API.
type DeviceState struct {
	Device     string         `json:"device"`
	Site       string         `json:"site"`
	Commune    string         `json:"commune"`
	EPCI       string         `json:"epci"`
	Group      string         `json:"group,omitempty"`
	Commanded  *float64       `json:"commanded_level"`  // null: nothing commanded (failsafe)
	Source     string         `json:"source,omitempty"` // "programme" or "dérogation"
	Reported   *float64       `json:"reported_level"`
	PowerW     *float64       `json:"power_w"`
	ReportedAt time.Time      `json:"reported_at,omitzero"`
	LastAck    time.Time      `json:"last_ack,omitzero"`
	Program    *PushedProgram `json:"program,omitempty"`
	Commands   []Command      `json:"commands,omitempty"`
}

// State returns the live state of the controllers keep selects (nil: all), sorted by device.
func (s *Service) State(keep func(hv.Device, hv.Site) bool, withDetail bool) []DeviceState {
	reg, plan := s.reg.Load(), s.plan.Load()
	now := s.now()
	var out []DeviceState
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range reg.Devices() {
		if d.Kind != hv.DeviceLightingController {
			continue
		}
		site, _ := reg.Site(d.Site)
		if keep != nil && !keep(d, site) {
			continue
		}
		st := DeviceState{Device: d.ID, Site: site.ID, Commune: site.Commune, EPCI: site.EPCI}
		if g := plan.GroupOf(&d, &site); g != nil {
			st.Group = g.Name
		}
		if c := s.commandAt(d.ID, now); c != nil {
			st.Commanded, st.Source = ptr(c.Level), "dérogation"
		} else if l, _, ok := s.programLevelLocked(d.ID, now); ok {
			st.Commanded, st.Source = ptr(l), "programme"
		}
		if r := s.reported[d.ID]; r != nil {
			if !math.IsNaN(r.level) {
				st.Reported, st.ReportedAt = ptr(r.level), r.levelAt
			}
			if !math.IsNaN(r.power) {
				st.PowerW = ptr(r.power)
			}
			st.LastAck = r.ackAt
		}
		if withDetail {
			if p := s.programs[d.ID]; p != nil {
				cp := *p
				st.Program = &cp
			}
			for _, c := range slices.Backward(s.latest[d.ID]) {
				st.Commands = append(st.Commands, *c)
			}
		}
		out = append(out, st)
	}
	return out
}

func ptr(v float64) *float64 { return &v }

// DB returns the state database (audit log, commands, overrides).
func (s *Service) DB() *DB { return s.db }

// SetProgram adds or replaces a program definition (validated against the whole plan), persists the edit
// and pushes the programs that change.
func (s *Service) SetProgram(ctx context.Context, def ProgramDef, actor string) error {
	next, err := s.plan.Load().WithProgram(def)
	if err != nil {
		return err
	}
	if err := s.db.SaveProgramDef(ctx, ProgramEdit{Name: def.Name, Def: &def, By: actor, Updated: s.now()}); err != nil {
		return err
	}
	s.plan.Store(next)
	b, _ := json.Marshal(def)
	s.audit(ctx, AuditEntry{Actor: actor, Action: "program.edit", Target: def.Name, Detail: string(b), Outcome: "ok"})
	s.resync()
	return nil
}

// DeleteProgram removes a program definition no calendar or group uses.
func (s *Service) DeleteProgram(ctx context.Context, name, actor string) error {
	next, err := s.plan.Load().WithoutProgram(name)
	if err != nil {
		return err
	}
	if err := s.db.SaveProgramDef(ctx, ProgramEdit{Name: name, By: actor, Updated: s.now()}); err != nil {
		return err
	}
	s.plan.Store(next)
	s.audit(ctx, AuditEntry{Actor: actor, Action: "program.delete", Target: name, Outcome: "ok"})
	s.resync()
	return nil
}

func frLevel(l float64) string { return fmt.Sprintf("%.0f", l) }

func frTime(t time.Time) string { return t.In(sun.Paris()).Format("02/01/2006 15:04:05") }
