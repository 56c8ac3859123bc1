package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/notify"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/rules"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// loadRules reads the rule files of the configuration (the embedded default set when there are none) as one
// set: rule names are unique across files.
func loadRules(files []string, reg *registry.Registry, deps rules.Deps) (*rules.RuleSet, error) {
	if len(files) == 0 {
		return rules.LoadRulesFS(configs.Rules(), reg, deps)
	}
	all := &rules.RuleSet{Inactive: map[string]string{}}
	where := map[string]string{}
	var errs []error
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("rules.files: %w", err))
			continue
		}
		set, err := rules.LoadRules(data, f, reg, deps)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range set.Rules {
			if prev, ok := where[r.Name()]; ok {
				errs = append(errs, fmt.Errorf("%s: rule %q: %w: already defined in %s", f, r.Name(), hv.ErrInvalid, prev))
				continue
			}
			where[r.Name()] = f
			all.Rules = append(all.Rules, r)
		}
		for k, v := range set.Inactive {
			all.Inactive[k] = v
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return all, nil
}

// rulesService is the running rules engine and what it needs stopped.
type rulesService struct {
	engine  *rules.Engine
	manager *rules.Manager
	db      *rules.SQLite
	stop    []func()
}

func (r *rulesService) Close() {
	for i := len(r.stop) - 1; i >= 0; i-- {
		r.stop[i]()
	}
	if r.manager != nil {
		if err := r.manager.Flush(context.Background()); err != nil {
			slog.Default().Warn("alert evidence not flushed", "err", err)
		}
	}
	r.db.Close()
}

// startRules opens the alert store (<storage.path>/state.db), loads the rules, wires the notifiers (the live
// hub always; MQTT, webhooks and e-mail as configured, each behind a bounded queue) and starts evaluating.
// commanded is the lighting service's commanded levels; nil (lighting disabled) leaves dimming_failure inactive.
func startRules(ctx context.Context, cfg *Config, store hv.Store, reg *registry.Registry, state *live.State, hub *live.Hub,
	commanded rules.CommandedFunc, brokerURL string, promReg prometheus.Registerer, log *slog.Logger) (*rulesService, error) {
	deps := rules.Deps{LastSeen: state.LastSeen, Commanded: commanded}
	load := func() (*rules.RuleSet, error) { return loadRules(cfg.Rules.Files, reg, deps) }
	set, err := load()
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	db, err := rules.OpenSQLite(filepath.Join(cfg.Storage.Path, "state.db"))
	if err != nil {
		return nil, fmt.Errorf("storage.path: alert store: %w", err)
	}
	svc := &rulesService{db: db}
	runCtx, cancel := context.WithCancel(ctx)
	svc.stop = append(svc.stop, cancel)

	routes := []notify.Route{{Name: "live", Notifier: hub}}
	queued := func(name string, n hv.Notifier, rc RouteConfig) {
		q := notify.NewQueue(n, 1000, log.With("notifier", name))
		go q.Run(runCtx)
		r := notify.Route{Name: name, Notifier: q}
		for _, s := range rc.Severities {
			r.Severities = append(r.Severities, hv.Severity(s))
		}
		if len(rc.EPCIs) > 0 {
			r.Labels = map[string][]string{"epci": rc.EPCIs}
		}
		routes = append(routes, r)
	}
	if cfg.Notify.MQTT {
		opts := paho.NewClientOptions().AddBroker(brokerURL).SetClientID(cfg.MQTT.ClientID + "-alerts").
			SetUsername(cfg.MQTT.Username).SetPassword(cfg.MQTT.Password).SetAutoReconnect(true).
			SetConnectRetry(true).SetConnectRetryInterval(2 * time.Second)
		c := paho.NewClient(opts)
		c.Connect() // retried in the background; publications wait for the connection
		svc.stop = append(svc.stop, func() { c.Disconnect(250) })
		queued("mqtt", notify.NewMQTT(c, 10*time.Second), RouteConfig{})
	}
	for _, w := range cfg.Notify.Webhooks {
		n, err := notify.NewWebhook(notify.WebhookConfig{URL: w.URL, Secret: w.Secret}, log.With("notifier", w.Name))
		if err != nil {
			svc.Close()
			return nil, fmt.Errorf("notify.webhooks %s: %w", w.Name, err)
		}
		queued("webhook "+w.Name, n, w.RouteConfig)
	}
	if e := cfg.Notify.Email; e.Addr != "" {
		n, err := notify.NewEmail(notify.EmailConfig{Addr: e.Addr, From: e.From, To: e.To, Username: e.Username,
			Password: e.Password, Every: e.Every}, log.With("notifier", "email"))
		if err != nil {
			svc.Close()
			return nil, fmt.Errorf("notify.email: %w", err)
		}
		go n.Run(runCtx)
		queued("email", n, e.RouteConfig)
	}
	router, err := notify.NewRouter(routes...)
	if err != nil {
		svc.Close()
		return nil, err
	}

	var silenceRules []string
	for _, r := range set.Rules {
		if k, ok := r.(interface{ Kind() string }); ok && k.Kind() == rules.KindSilence {
			silenceRules = append(silenceRules, r.Name())
		}
	}
	svc.manager, err = rules.NewManager(ctx, db, router, rules.LookupTopology(reg.Lookup), log.With("component", "alerts"),
		rules.Options{SilenceRules: silenceRules})
	if err != nil {
		svc.Close()
		return nil, fmt.Errorf("alerts: %w", err)
	}
	svc.engine, err = rules.NewEngine(rules.EngineConfig{Every: cfg.Rules.Interval, Registerer: promReg}, set, load,
		svc.manager, store, log.With("component", "rules"))
	if err != nil {
		svc.Close()
		return nil, err
	}
	// Streaming rules rebuild what they remember of the readings from the store before ingest starts.
	if n, err := svc.engine.Warm(ctx, time.Now()); err != nil {
		log.Warn("streaming rules not warmed up from the store: they start empty", "err", err)
	} else {
		log.Info("streaming rules warmed up from the store", "readings", n)
	}
	go svc.engine.Run(runCtx)
	go pruneAlerts(runCtx, db, cfg.Storage.Retention, log)
	if len(cfg.Rules.Files) > 0 {
		if err := watchRules(runCtx, cfg.Rules.Files, svc.engine, log); err != nil {
			log.Warn("rule files not watched: reload with POST /api/v1/rules/reload", "err", err)
		}
	}
	log.Info("rules engine started", "rules", len(set.Rules), "inactive", len(set.Inactive), "interval", cfg.Rules.Interval)
	return svc, nil
}

// pruneAlerts drops, once a day, resolved alerts and history older than the retention.
func pruneAlerts(ctx context.Context, db *rules.SQLite, retention time.Duration, log *slog.Logger) {
	prune(ctx, "alert history", db.Prune, retention, log)
}

// prune deletes what is older than the retention from a state table, at start and then daily.
func prune(ctx context.Context, what string, del func(context.Context, time.Time) (int64, error), retention time.Duration, log *slog.Logger) {
	t := time.NewTicker(24 * time.Hour)
	defer t.Stop()
	for {
		if n, err := del(ctx, time.Now().Add(-retention)); err != nil {
			log.Warn(what+" not pruned", "err", err)
		} else if n > 0 {
			log.Info(what+" pruned", "rows", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watchRules reloads the rules when one of their files changes.
func watchRules(ctx context.Context, files []string, e *rules.Engine, log *slog.Logger) error {
	// Logged by Reload; the previous rules keep running on error.
	return watchFiles(ctx, files, "rule file watch", func() { _ = e.Reload(ctx, time.Now()) }, log)
}

// watchFiles calls reload when one of files changes. Editors replace files (write a temporary, rename it),
// so the directories are watched, and a burst of events makes one reload.
func watchFiles(ctx context.Context, files []string, what string, reload func(), log *slog.Logger) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	watched := map[string]bool{}
	var abs []string
	for _, f := range files {
		a, err := filepath.Abs(f)
		if err != nil {
			w.Close()
			return err
		}
		abs = append(abs, a)
		if d := filepath.Dir(a); !watched[d] {
			if err := w.Add(d); err != nil {
				w.Close()
				return err
			}
			watched[d] = true
		}
	}
	go func() {
		defer w.Close()
		var debounce <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if slices.Contains(abs, filepath.Clean(ev.Name)) {
					debounce = time.After(500 * time.Millisecond)
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn(what, "err", err)
			case <-debounce:
				debounce = nil
				reload()
			}
		}
	}()
	return nil
}

// rulesCmd is `hyperviseur rules check`: validate rule files against the registry without running them.
func rulesCmd(configFile *string) *cobra.Command {
	cmd := &cobra.Command{Use: "rules", Short: "Rule tools"}
	var (
		demoFleet bool
		o         fleet.Options
	)
	check := &cobra.Command{
		Use:   "check [FILE...]",
		Short: "Validate rule files (default: the configured ones, or the embedded set) against the registry",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := LoadConfig(*configFile)
			if err != nil {
				return err
			}
			var reg *registry.Registry
			if demoFleet {
				t, err := registry.DefaultTerritory()
				if err != nil {
					return err
				}
				if _, reg, err = fleet.Load(t, o); err != nil {
					return fmt.Errorf("--epci: %w", err)
				}
			} else if reg, err = loadRegistry(cfg); err != nil {
				return err
			}
			files := args
			if len(files) == 0 {
				files = cfg.Rules.Files
			}
			// Every dependency a running service gives, so only real problems are reported.
			deps := rules.Deps{LastSeen: func(string) int64 { return 0 },
				Commanded: func(string, time.Time) (float64, time.Time, bool) { return 0, time.Time{}, false }}
			set, err := loadRules(files, reg, deps)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d rules OK against %d devices\n", len(set.Rules), len(reg.Devices()))
			return nil
		},
	}
	check.Flags().BoolVar(&demoFleet, "fleet", false, "check against the simulated fleet (the demo's registry) instead of the configured registry")
	check.Flags().Uint64Var(&o.Seed, "seed", 1, "fleet seed, with --fleet")
	check.Flags().StringSliceVar(&o.EPCIs, "epci", nil, "only the fleet of these EPCI, with --fleet")
	cmd.AddCommand(check, rulesTestCmd())
	return cmd
}
