package lighting_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/configs"
	"github.com/useda02/hyperviseur/lighting"
	"github.com/useda02/hyperviseur/registry"
	"github.com/useda02/hyperviseur/simulators/fleet"
)

// nopPublisher takes every message at once, so the benchmarks measure the service, not a broker.
type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, bool, []byte) error { return nil }

// wholeFleet is the simulated fleet of the Aisne (seed 1): 1 740 lighting controllers.
func wholeFleet(b *testing.B) (*registry.Registry, *lighting.Plan) {
	b.Helper()
	t, err := registry.DefaultTerritory()
	if err != nil {
		b.Fatal(err)
	}
	_, reg, err := fleet.Load(t, fleet.Options{Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	plan, err := lighting.LoadPlan(configs.Lighting(), "default.yaml")
	if err != nil {
		b.Fatal(err)
	}
	return reg, plan
}

func controllers(reg *registry.Registry) []string {
	var out []string
	for _, d := range reg.Devices() {
		if d.Kind == hv.DeviceLightingController {
			out = append(out, d.ID)
		}
	}
	return out
}

// BenchmarkSyncPrograms: one daily push of the whole fleet's programs (two nights each): resolving the
// nights at each cabinet, encoding, saving the version and its audit line in SQLite, publishing. Reported per
// sync and per controller.
func BenchmarkSyncPrograms(b *testing.B) {
	reg, plan := wholeFleet(b)
	n := len(controllers(reg))
	night := time.Date(2027, 1, 12, 18, 0, 0, 0, time.UTC)
	db, err := lighting.OpenDB(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	now := night
	svc, err := lighting.New(db, nopPublisher{}, reg, plan, nil, lighting.Options{Now: func() time.Time { return now }}, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		now = night.AddDate(0, 0, i) // a new night: every program changes
		if err := svc.SyncPrograms(ctx, now); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/controller")
	b.ReportMetric(float64(n), "controllers")
}

// BenchmarkCommanded: the commanded level the rules engine asks for every level and power reading of a
// controller (dimming_failure, day_burner), with a program in force.
func BenchmarkCommanded(b *testing.B) {
	reg, plan := wholeFleet(b)
	ids := controllers(reg)
	night := time.Date(2027, 1, 12, 18, 0, 0, 0, time.UTC)
	db, err := lighting.OpenDB(filepath.Join(b.TempDir(), "state.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	svc, err := lighting.New(db, nopPublisher{}, reg, plan, nil, lighting.Options{Now: func() time.Time { return night }}, nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.SyncPrograms(context.Background(), night); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, ok := svc.Commanded(ids[i%len(ids)], night.Add(time.Duration(i%600)*time.Minute)); !ok && i%600 < 100 {
			b.Fatal("no commanded level in the evening")
		}
	}
}
