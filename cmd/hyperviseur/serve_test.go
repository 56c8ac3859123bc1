package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
	"github.com/useda02/hyperviseur/live"
	"github.com/useda02/hyperviseur/store/tsdb"
)

// TestRestoreLive: at start the live state gets the newest stored reading of each device and metric of the
// last two weeks, so a device that fell silent before a restart is still known, with its last time.
func TestRestoreLive(t *testing.T) {
	store, err := tsdb.Open(t.TempDir(), tsdb.Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	recent, dead := now.Add(-time.Hour).UnixMilli(), now.Add(-3*24*time.Hour).UnixMilli()
	if err := store.Write(context.Background(), []hv.Reading{
		{Device: "ancient", Metric: hv.PowerW, Value: 3, Time: now.Add(-30 * 24 * time.Hour).UnixMilli()}, // in time order:
		{Device: "dead", Metric: hv.EnergyKWh, Value: 9, Time: dead},                                      // the store's out-of-order window is a week
		{Device: "alive", Metric: hv.PowerW, Value: 1, Time: recent - 600_000},
		{Device: "alive", Metric: hv.PowerW, Value: 2, Time: recent},
	}); err != nil {
		t.Fatal(err)
	}
	st := live.New()
	restoreLive(context.Background(), store, st, slog.New(slog.DiscardHandler))
	if st.LastSeen("alive") != recent || st.LastSeen("dead") != dead || st.LastSeen("ancient") != 0 {
		t.Fatalf("last seen: alive %d, dead %d, ancient %d", st.LastSeen("alive"), st.LastSeen("dead"), st.LastSeen("ancient"))
	}
	if rs, _ := st.Latest("alive"); len(rs) != 1 || rs[0].Value != 2 {
		t.Fatalf("latest of alive: %+v", rs)
	}
}
