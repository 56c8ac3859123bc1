package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/broker"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/dashboard"
	"github.com/useda02/hyperviseur/ingest"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators"
	"github.com/useda02/hyperviseur/simulators/fleet"
	"github.com/useda02/hyperviseur/spool"
	"github.com/useda02/hyperviseur/store/influx"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// run wires the service together and runs it until ctx ends, then shuts down in the order that loses
// nothing: stop taking messages, write or spool what was taken and acknowledge it, then disconnect.
func run(ctx context.Context, cfg *Config, log *slog.Logger, demo *demoOptions) error {
	var (
		reg    *registry.Registry
		runner *simulators.Runner
		pc     simulators.PublishConfig
		err    error
	)
	if demo != nil {
		reg, runner, pc, err = prepareDemo(cfg, demo)
	} else {
		reg, err = loadRegistry(cfg)
	}
	if err != nil {
		return err
	}
	// Loading a large registry parses a YAML tree many times its size (633 MB for 100 000 devices): hand that
	// memory back to the system now rather than over the next minutes.
	debug.FreeOSMemory()
	if err := os.MkdirAll(cfg.Storage.Path, 0o750); err != nil {
		return fmt.Errorf("storage.path %s: %w", cfg.Storage.Path, err)
	}

	store, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close()

	if runner != nil {
		schedule, err := historySchedule(cfg, reg.Device)
		if err != nil {
			return err
		}
		if err := demoHistory(ctx, store, runner, schedule, demo.start, demo.HistoryMonths, log.With("component", "demo")); err != nil {
			return err
		}
	}

	sp, err := spool.Open(cfg.Spool.Path, cfg.Spool.MaxBytes, log.With("component", "spool"))
	if err != nil {
		return fmt.Errorf("spool.path %s: %w", cfg.Spool.Path, err)
	}
	defer sp.Close()

	counters, err := restoreCounters(ctx, store, sp, cfg.Storage.Retention, log)
	if err != nil {
		return err
	}
	log.Info("counter state restored", "indexes", counters.Len(), "spooled_batches", sp.Pending())

	brokerURL := cfg.MQTT.Broker
	if brokerURL == "" {
		users := make([]broker.User, len(cfg.MQTT.Embedded.Users))
		for i, u := range cfg.MQTT.Embedded.Users {
			users[i] = broker.User{Username: u.Username, Password: u.Password}
		}
		b, err := broker.Start(broker.Config{Listen: cfg.MQTT.Embedded.Listen, Users: users}, log)
		if err != nil {
			return fmt.Errorf("mqtt.embedded.listen: %w", err)
		}
		defer b.Close()
		brokerURL = "tcp://" + cfg.MQTT.Embedded.Listen
		log.Info("embedded MQTT broker listening", "addr", cfg.MQTT.Embedded.Listen)
	}

	promReg := prometheus.NewRegistry()
	// The GC metrics add go_gc_heap_live_bytes, the heap the last GC found live: what memory per device is
	// measured on (heap in use also counts fragmentation and what was allocated since).
	promReg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := ingest.NewMetrics(promReg)

	state := live.New()
	// The latest values survive a restart: the API's latest readings, and the silence rule, which would
	// otherwise forget a device that died before the restart (never heard is not silent) and resolve its alert.
	restoreLive(ctx, store, state, log)
	hub := live.NewHub()
	lights, err := startLighting(ctx, cfg, reg, state, brokerURL, log)
	if err != nil {
		return err
	}
	defer lights.Close()
	var commanded rules.CommandedFunc
	if lights != nil {
		commanded = lights.svc.Commanded
	}
	alerting, err := startRules(ctx, cfg, store, reg, state, hub, commanded, brokerURL, promReg, log)
	if err != nil {
		return err
	}
	defer alerting.Close()
	rollups, analytics, stopReporting := startReporting(ctx, cfg, store, reg, log)
	defer stopReporting()
	bacs, stopBACS, err := startBACS(ctx, cfg, store, rollups, reg, alerting.manager, log)
	if err != nil {
		return err
	}
	defer stopBACS()
	if analytics != nil {
		promReg.MustRegister(reporting.NewTotalsCollector(analytics)) // the year's totals for Grafana users
		refs, err := loadReferences(cfg, reg, runner)
		if err != nil {
			return err
		}
		analytics.SetReferences(refs)
	}
	unregistered := registry.NewUnregistered(10000)
	writer := ingest.NewWriter(ingest.WriterConfig{
		BatchSize: cfg.Ingest.BatchSize, FlushInterval: cfg.Ingest.FlushInterval, Writers: cfg.Ingest.Writers,
		QueueSize: cfg.Ingest.QueueSize, WriteTimeout: cfg.Ingest.WriteTimeout,
	}, store, sp, metrics, log.With("component", "writer"), func(rs []hv.Reading) {
		state.Update(rs)
		hub.PublishReadings(rs)
		alerting.engine.Observe(rs)
		if lights != nil {
			lights.svc.Observe(rs)
		}
		if rollups != nil {
			rollups.Observe(rs)
		}
	})

	sources := make([]*ingest.Source, 0, len(cfg.MQTT.Topics))
	for _, t := range cfg.MQTT.Topics {
		s, err := ingest.NewSource(t.Name, t.Topic, t.Format)
		if err != nil {
			return err
		}
		sources = append(sources, s)
	}
	pipeline := ingest.NewPipeline(ingest.Config{
		MaxPayload: cfg.Ingest.MaxPayload, MaxFuture: cfg.Ingest.MaxFuture, Retention: cfg.Storage.Retention,
	}, reg.Lookup, unregistered.Observe, &decode.Mapper{Profiles: reg.Profiles()}, counters, writer, nil, metrics,
		log.With("component", "ingest"))
	consumer := ingest.NewConsumer(ingest.ConsumerConfig{
		Broker: brokerURL, ClientID: cfg.MQTT.ClientID, Username: cfg.MQTT.Username, Password: cfg.MQTT.Password,
	}, sources, pipeline, metrics, log.With("component", "mqtt"))
	pipeline.SetDeadLetter(consumer.DeadLetter)

	auth, err := newAuth(cfg, log)
	if err != nil {
		return err
	}
	accounts, err := startAccounts(ctx, cfg, reg, lights, promReg, log)
	if err != nil {
		return err
	}
	defer accounts.Close()
	tlsConfig, err := loadTLS(cfg)
	if err != nil {
		return err
	}
	api := dashboard.New(dashboard.Deps{
		Store: store, Registry: reg, Unregistered: unregistered, Live: state,
		Auth:     dashboard.Chain(accounts.accounts.Sessions(), accounts.accounts.Tokens(), auth),
		Accounts: accounts.accounts, Audit: accounts.audit,
		Metrics: promhttp.HandlerFor(promReg, promhttp.HandlerOpts{Registry: promReg}),
		Formats: decode.Formats(), Hub: hub, AllowedOrigins: cfg.HTTP.AllowedOrigins,
		MapTiles: dashboard.MapTiles{URL: cfg.HTTP.MapTiles, Attribution: cfg.HTTP.MapAttribution},
		Alerts:   alerting.manager, Rules: alerting.engine, Lighting: lights.service(), Consumption: analytics,
		BACS: bacs,
		Ready: func(ctx context.Context) error {
			if !consumer.Connected() {
				return errors.New("mqtt broker not connected")
			}
			if !writer.Healthy() {
				if err := store.Ping(ctx); err != nil {
					return fmt.Errorf("store not writable (readings are spooled): %w", err)
				}
			}
			return nil
		},
	}, log.With("component", "http"))
	defer api.Close() // the /ws board's goroutines

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	srv := &http.Server{Handler: api.Handler(), ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConfig}
	httpErr := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			httpErr <- srv.ServeTLS(ln, "", "") // the certificate is in TLSConfig, loaded before listening
			return
		}
		httpErr <- srv.Serve(ln)
	}()
	log.Info("hyperviseur started", "version", buildVersion(), "http", ln.Addr().String(), "tls", tlsConfig != nil, "broker", brokerURL,
		"store", cfg.Storage.Driver, "sites", len(reg.Sites()), "devices", len(reg.Devices()))

	writerCtx, stopWriter := context.WithCancel(context.Background())
	writerDone := make(chan struct{})
	go func() { writer.Run(writerCtx, 15*time.Second); close(writerDone) }()
	consumer.Start()

	if runner != nil {
		pc.Broker = brokerURL
		go simulators.Publish(ctx, pc, runner, log.With("component", "demo"))
	}

	select {
	case <-ctx.Done():
	case err := <-httpErr:
		log.Error("http server stopped", "err", err)
	}
	log.Info("shutting down")
	consumer.StopIntake()
	stopWriter()
	<-writerDone
	consumer.Disconnect()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return nil
}

// restoreCounters rebuilds the last index of every meter from the store, then from the spool, whose readings
// the store has not seen yet: without them a delta spanning a spooled interval would be counted twice.
func restoreCounters(ctx context.Context, store hv.Store, sp *spool.Spool, retention time.Duration, log *slog.Logger) (*ingest.Counters, error) {
	counters := ingest.NewCounters()
	since := time.Now().Add(-retention).UnixMilli()
	// Ingesting without the indexes would count an interval twice, so wait for the store: meanwhile the
	// broker keeps the messages for our persistent session.
	var last []hv.Reading
	for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
		var err error
		if last, err = store.Last(ctx, hv.CumulativeMetrics(), since); err == nil {
			break
		}
		log.Warn("store unreachable at start; waiting for it before ingesting", "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("restore counter state from the store: %w", err)
		case <-time.After(wait):
		}
	}
	counters.Restore(last)
	if err := sp.Scan(ctx, func(rs []hv.Reading) error { counters.Restore(rs); return nil }); err != nil {
		return nil, fmt.Errorf("restore counter state from the spool: %w", err)
	}
	return counters, nil
}

// demoOptions choose the simulated fleet of `hyperviseur demo`.
type demoOptions struct {
	Seed   uint64
	EPCIs  []string
	Speed  float64
	Faults []string // simulators.ParseFault syntax
	// HistoryMonths of hourly history are written before the fleet goes live (only the gap since the newest
	// stored reading when there is one); 0: none.
	HistoryMonths int

	start time.Time // the runner's start, set by prepareDemo
}

// prepareDemo generates the fleet, loads it as the registry (the demo brings its own devices) and readies its
// runner with the faults asked for; a bad fault fails here, before anything starts, naming the flag.
func prepareDemo(cfg *Config, o *demoOptions) (*registry.Registry, *simulators.Runner, simulators.PublishConfig, error) {
	pc := simulators.PublishConfig{ClientID: "hyperviseur-demo-fleet", Speed: o.Speed, CatchUp: 24 * time.Hour}
	if len(cfg.Registry.Files) > 0 {
		return nil, nil, pc, fmt.Errorf("registry.files: the demo generates its own registry from the fleet; unset it")
	}
	territory, err := registry.DefaultTerritory()
	if err != nil {
		return nil, nil, pc, err
	}
	f, reg, err := fleet.Load(territory, fleet.Options{Seed: o.Seed, EPCIs: o.EPCIs})
	if err != nil {
		return nil, nil, pc, fmt.Errorf("--epci: %w", err)
	}
	if pc.Faults, err = simulators.ParseFaults(o.Faults); err != nil {
		return nil, nil, pc, fmt.Errorf("--fault: %w", err)
	}
	o.start = pc.Start(time.Now())
	runner := simulators.NewRunner(f, o.Seed, o.start)
	for _, ft := range pc.Faults {
		if err := runner.Inject(ft); err != nil {
			return nil, nil, pc, fmt.Errorf("--fault %s: %w", ft, err)
		}
	}
	return reg, runner, pc, nil
}

func loadRegistry(cfg *Config) (*registry.Registry, error) {
	territory, err := registry.DefaultTerritory()
	if err != nil {
		return nil, err
	}
	if len(cfg.Registry.Files) == 0 {
		return registry.LoadBytes(territory, "configs/registry.yaml (embedded)", configs.DemoRegistry)
	}
	return registry.Load(territory, cfg.Registry.Files...)
}

func openStore(ctx context.Context, cfg *Config, log *slog.Logger) (hv.Store, error) {
	switch cfg.Storage.Driver {
	case "influxdb":
		c := cfg.Storage.InfluxDB
		s, err := influx.Open(ctx, influx.Config{URL: c.URL, Token: c.Token, Org: c.Org, Bucket: c.Bucket,
			BatchSize: c.BatchSize, GZip: c.GZip, Timeout: c.Timeout}, log.With("component", "influxdb"))
		if err != nil {
			return nil, fmt.Errorf("storage.influxdb: %w", err)
		}
		return s, nil
	default:
		s, err := tsdb.Open(filepath.Join(cfg.Storage.Path, "tsdb"), tsdb.Options{Retention: cfg.Storage.Retention},
			log.With("component", "tsdb"))
		if err != nil {
			return nil, fmt.Errorf("storage.path: %w", err)
		}
		return s, nil
	}
}

// newAuth builds the token authenticator. With no token configured it creates a bootstrap admin token in
// <storage.path>/admin.token (0600) so the API is never open by default; the token itself is never logged.
func newAuth(cfg *Config, log *slog.Logger) (dashboard.Authenticator, error) {
	tokens := make([]dashboard.TokenConfig, 0, len(cfg.Auth.Tokens))
	for _, t := range cfg.Auth.Tokens {
		tokens = append(tokens, dashboard.TokenConfig{Name: t.Name, Role: dashboard.Role(t.Role), EPCIs: t.EPCIs, SHA256: t.SHA256})
	}
	if len(tokens) == 0 {
		path := filepath.Join(cfg.Storage.Path, "admin.token")
		sum, err := bootstrapToken(path)
		if err != nil {
			return nil, fmt.Errorf("auth: bootstrap admin token: %w", err)
		}
		tokens = append(tokens, dashboard.TokenConfig{Name: "bootstrap-admin", Role: dashboard.RoleAdmin, SHA256: sum})
		log.Info("no auth.tokens configured: bootstrap admin token in file", "path", path)
	}
	a, err := dashboard.NewTokenAuth(tokens)
	if err != nil {
		return nil, fmt.Errorf("auth.tokens: %w", err)
	}
	return a, nil
}

// bootstrapToken reuses the token file if present, else writes a new one; it returns the token's SHA-256.
func bootstrapToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return dashboard.HashToken(string(trimNewline(b))), nil
	}
	plain, sum, err := dashboard.GenerateToken()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(plain+"\n"), 0o600); err != nil {
		return "", err
	}
	return sum, nil
}

func trimNewline(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// liveLookback is how far back the live state is restored from the store at start.
const liveLookback = 14 * 24 * time.Hour

// restoreLive seeds the live state with the newest stored reading of every device and canonical metric of
// the last liveLookback; a store that does not answer leaves it empty (it fills as devices report).
func restoreLive(ctx context.Context, store hv.Store, state *live.State, log *slog.Logger) {
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	last, err := store.Last(qctx, hv.Metrics(), time.Now().Add(-liveLookback).UnixMilli())
	if err != nil {
		log.Warn("live state not restored from the store: it fills as devices report", "err", err)
		return
	}
	state.Update(last)
	log.Info("live state restored from the store", "readings", len(last))
}
