package main

import (
	"context"
	"log/slog"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
)

// startReporting builds the daily rollups from the store in the background (the consumption API answers 503
// until they are ready) and keeps them exact: the writer's hook marks the days it stores, Run re-reads them.
// stop waits for it to end, before the store closes.
func startReporting(ctx context.Context, cfg *Config, store hv.Store, reg *registry.Registry, log *slog.Logger) (
	*reporting.Rollups, *reporting.Analytics, func()) {
	if !cfg.Reporting.Enabled {
		return nil, nil, func() {}
	}
	log = log.With("component", "reporting")
	rollups := reporting.NewRollups(store, cfg.Reporting.Config, log)
	analytics := reporting.NewAnalytics(store, rollups, func() *registry.Registry { return reg }, cfg.Reporting.Config)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := rollups.Run(runCtx); err != nil && runCtx.Err() == nil {
			log.Error("consumption rollups stopped", "err", err)
		}
	}()
	return rollups, analytics, func() { cancel(); <-done }
}
