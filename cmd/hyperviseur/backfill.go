package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/simulators"
)

// progress is a backfill's state at one report.
type progress struct {
	Done, Total int64
	Rate        float64 // readings per second since the start
	ETA         time.Duration
}

func (p progress) String() string {
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Done) / float64(p.Total)
	}
	return fmt.Sprintf("%.1f M of %.1f M readings (%.0f %%), %.2f M readings/s, ETA %s",
		float64(p.Done)/1e6, float64(p.Total)/1e6, pct, p.Rate/1e6, p.ETA.Round(time.Second))
}

// historySchedule makes the history's controllers follow the lighting plan of cfg (as if the service had driven
// them all along); nil when lighting control is disabled. lookup finds a controller and its cabinet.
func historySchedule(cfg *Config, lookup func(id string) (hv.Device, hv.Site, bool)) (simulators.Schedule, error) {
	if !cfg.Lighting.Enabled {
		return nil, nil
	}
	plan, err := loadPlan(cfg.Lighting.Files)
	if err != nil {
		return nil, err
	}
	return func(device string, t time.Time) (lighting.Program, bool) {
		d, site, ok := lookup(device)
		if !ok {
			return lighting.Program{}, false
		}
		return plan.ProgramAt(d, site, t)
	}, nil
}

// backfillHistory writes the fleet's hourly history of [from, to) into store, each device resuming from its
// newest stored index, its lighting following schedule (nil: the controllers' failsafe), and calls report
// every interval while it runs. It returns the readings written.
func backfillHistory(ctx context.Context, store hv.Store, runner *simulators.Runner, schedule simulators.Schedule, from, to time.Time,
	every time.Duration, report func(progress)) (int64, error) {
	// Since far enough back that a device stored long ago still resumes rather than restarting its index.
	last, err := store.Last(ctx, hv.CumulativeMetrics(), from.AddDate(-2, 0, 0).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("history: newest stored indexes: %w", err)
	}
	h := runner.History(last)
	h.FollowPrograms(schedule)
	total := h.Total(from.UnixMilli(), to.UnixMilli())
	start := time.Now()
	snapshot := func() progress {
		done := h.Emitted()
		p := progress{Done: done, Total: total}
		if el := time.Since(start).Seconds(); el > 0 {
			p.Rate = float64(done) / el
		}
		if p.Rate > 0 {
			p.ETA = time.Duration(float64(total-done) / p.Rate * float64(time.Second))
		}
		return p
	}
	stop := make(chan struct{})
	reported := make(chan struct{})
	go func() {
		defer close(reported)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				report(snapshot())
			}
		}
	}()
	err = hv.Backfill(ctx, store, from.UnixMilli(), to.UnixMilli(), h.Fill)
	close(stop)
	<-reported
	if err != nil {
		return h.Emitted(), fmt.Errorf("history: %w", err)
	}
	return h.Emitted(), nil
}

// demoHistory gives the demo's fleet its past before it goes live: months of hourly history up to the
// runner's start, or only the gap since the newest stored reading when an earlier run left data, then
// resumes the runner's indexes from the store so live reports carry on from the history.
func demoHistory(ctx context.Context, store hv.Store, runner *simulators.Runner, schedule simulators.Schedule, start time.Time, months int, log *slog.Logger) error {
	to := start.Truncate(simulators.HistoryStep)
	from := to.AddDate(0, -months, 0)
	// Far enough back that a device stored long ago still resumes rather than restarting its index.
	since := from.AddDate(-2, 0, 0).UnixMilli()
	last, err := store.Last(ctx, hv.CumulativeMetrics(), since)
	if err != nil {
		return fmt.Errorf("demo history: newest stored indexes: %w", err)
	}
	var newest int64
	for _, r := range last {
		newest = max(newest, r.Time)
	}
	switch {
	case months <= 0:
	case newest >= to.Add(-simulators.HistoryStep).UnixMilli():
		log.Info("demo history already stored", "newest", time.UnixMilli(newest).UTC().Format(time.RFC3339))
	default:
		if newest > from.UnixMilli() {
			from = time.UnixMilli(newest)
		}
		log.Info("writing the demo fleet's history", "from", from.UTC().Format(time.RFC3339), "to", to.UTC().Format(time.RFC3339))
		began := time.Now()
		n, err := backfillHistory(ctx, store, runner, schedule, from, to, 5*time.Second, func(p progress) {
			log.Info("demo history", "progress", p.String())
		})
		if err != nil {
			return fmt.Errorf("demo history: %w", err)
		}
		log.Info("demo history written", "readings", n, "took", time.Since(began).Round(time.Millisecond))
		if last, err = store.Last(ctx, hv.CumulativeMetrics(), since); err != nil {
			return fmt.Errorf("demo history: newest stored indexes: %w", err)
		}
	}
	runner.Resume(last)
	return nil
}
