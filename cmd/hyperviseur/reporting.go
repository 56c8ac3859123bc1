package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/reporting"
	"github.com/useda02/hyperviseur/rules"
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

// bacsCheckEvery is how often the daily BACS evaluation checks whether its day has come (or retries).
const bacsCheckEvery = 10 * time.Minute

// bacsHour is the Paris hour from which the day's BACS evaluation runs: late readings of the night are in.
const bacsHour = 6

// startBACS opens the monthly archive (<storage.path>/state.db, kept reporting.bacs_months_kept months) and
// runs, once a day, its sync from the store and the loss-of-efficiency analysis, whose findings become alerts
// of rule bacs_efficiency_loss. Without the rollups (reporting disabled) it does nothing. stop waits for it
// to end, before the rollups, the alerts and the store close.
func startBACS(ctx context.Context, cfg *Config, store hv.Store, rollups *reporting.Rollups, reg *registry.Registry,
	alerts *rules.Manager, log *slog.Logger) (*reporting.BACS, func(), error) {
	if rollups == nil {
		return nil, func() {}, nil
	}
	log = log.With("component", "bacs")
	archive, err := reporting.OpenMonthlyArchive(filepath.Join(cfg.Storage.Path, "state.db"))
	if err != nil {
		return nil, nil, fmt.Errorf("storage.path: %w", err)
	}
	bacs := reporting.NewBACS(store, rollups, archive, func() *registry.Registry { return reg }, cfg.Reporting.Config,
		cfg.Storage.Retention, log)
	daily, err := rules.NewDaily(reporting.BACSRuleSpec, bacsHour, bacs.LossConditions, alerts)
	if err != nil {
		archive.Close()
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		daily.Run(runCtx, bacsCheckEvery, time.Now, log)
	}()
	return bacs, func() { cancel(); <-done; archive.Close() }, nil
}
