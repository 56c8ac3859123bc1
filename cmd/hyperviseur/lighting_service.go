package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/registry"
)

// loadPlan reads the lighting plan files, or the embedded default when there are none.
func loadPlan(files []string) (*lighting.Plan, error) {
	if len(files) == 0 {
		p, err := lighting.LoadPlan(configs.Lighting(), "default.yaml")
		if err != nil {
			return nil, fmt.Errorf("lighting: embedded plan: %w", err)
		}
		return p, nil
	}
	dir := os.DirFS("/")
	names := make([]string, 0, len(files))
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("lighting.files: %w", err)
		}
		names = append(names, abs[1:])
	}
	p, err := lighting.LoadPlan(dir, names...)
	if err != nil {
		return nil, fmt.Errorf("lighting.files: %w", err)
	}
	return p, nil
}

// lightingService is the running lighting control and what it holds.
type lightingService struct {
	svc     *lighting.Service
	db      *lighting.DB
	clients []paho.Client
	cancel  context.CancelFunc
	done    chan struct{}
}

// service is the lighting service, nil when lighting control is disabled.
func (l *lightingService) service() *lighting.Service {
	if l == nil {
		return nil
	}
	return l.svc
}

func (l *lightingService) Close() {
	if l == nil {
		return
	}
	l.cancel()
	<-l.done
	for _, c := range l.clients {
		c.Disconnect(250)
	}
	l.db.Close()
}

// startLighting opens the lighting state (in <storage.path>/state.db), loads the plan, connects to the
// broker for programs, commands and acks, and runs the service.
func startLighting(ctx context.Context, cfg *Config, reg *registry.Registry, state *live.State, brokerURL string,
	log *slog.Logger) (*lightingService, error) {
	if !cfg.Lighting.Enabled {
		return nil, nil
	}
	plan, err := loadPlan(cfg.Lighting.Files)
	if err != nil {
		return nil, err
	}
	db, err := lighting.OpenDB(filepath.Join(cfg.Storage.Path, "state.db"))
	if err != nil {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	// Two connections: one publishes programs and commands, one receives the acks. On one connection mochi
	// (the embedded broker) mixes the packet ids of the client's QoS 1 publications with its own deliveries,
	// and a PUBACK can go missing (the publication then times out and is retried).
	var svc *lighting.Service
	client := func(suffix string) *paho.ClientOptions {
		return paho.NewClientOptions().AddBroker(brokerURL).SetClientID(cfg.MQTT.ClientID + suffix).
			SetUsername(cfg.MQTT.Username).SetPassword(cfg.MQTT.Password).SetAutoReconnect(true).
			SetConnectRetry(true).SetConnectRetryInterval(2 * time.Second).SetOrderMatters(false)
	}
	pub := paho.NewClient(client("-lighting"))
	sub := paho.NewClient(client("-lighting-acks").SetOnConnectHandler(func(c paho.Client) { lighting.Subscribe(c, svc, log) }))
	svc, err = lighting.New(db, lighting.MQTTPublisher{Client: pub}, reg, plan, state.LastSeen, lighting.Options{
		AckTimeout: cfg.Lighting.AckTimeout, MaxAttempts: cfg.Lighting.MaxAttempts, Offline: cfg.Lighting.OfflineAfter,
		Nights: cfg.Lighting.Nights,
	}, log.With("component", "lighting"))
	if err != nil {
		db.Close()
		return nil, err
	}
	sub.Connect() // both retried in the background; publications wait for the connection
	pub.Connect()
	runCtx, cancel := context.WithCancel(ctx)
	l := &lightingService{svc: svc, db: db, clients: []paho.Client{pub, sub}, cancel: cancel, done: make(chan struct{})}
	if len(cfg.Lighting.Files) > 0 {
		// An edited plan replaces the running one; an invalid one is refused and the running one kept.
		reload := func() {
			next, err := loadPlan(cfg.Lighting.Files)
			if err == nil {
				err = svc.SetPlan(runCtx, next)
			}
			if err != nil {
				log.Error("lighting plan not reloaded: the running one is kept", "err", err)
				return
			}
			log.Info("lighting plan reloaded")
		}
		if err := watchFiles(runCtx, cfg.Lighting.Files, "lighting plan watch", reload, log); err != nil {
			log.Warn("lighting plan files not watched: edits need a restart", "err", err)
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); svc.Run(runCtx) }()
	go func() {
		defer wg.Done()
		prune(runCtx, "lighting audit and commands", db.Prune, cfg.Storage.Retention, log)
	}()
	go func() { wg.Wait(); close(l.done) }()
	return l, nil
}
