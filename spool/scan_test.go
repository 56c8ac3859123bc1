package spool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"

	hv "github.com/useda02/hyperviseur"
)

func TestScanSeesPendingWithoutConsuming(t *testing.T) {
	sp, err := OpenWithOptions(t.TempDir(), Options{MaxBytes: 1 << 20, SegmentBytes: 256}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	for i := range 6 {
		batch := []hv.Reading{{Device: "d", Metric: hv.EnergyKWh, Time: int64(i), Value: float64(i)}}
		if err := sp.Append(batch); err != nil {
			t.Fatal(err)
		}
	}
	// Consume the first two batches, then refuse.
	stop := errors.New("store down")
	n := 0
	_, _ = sp.Replay(context.Background(), func(_ context.Context, rs []hv.Reading) error {
		if n == 2 {
			return stop
		}
		n++
		return nil
	})
	pending := sp.Pending()
	var seen []int64
	if err := sp.Scan(context.Background(), func(rs []hv.Reading) error {
		for _, r := range rs {
			seen = append(seen, r.Time)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 || seen[0] != 2 || seen[3] != 5 {
		t.Fatalf("scan saw times %v, want [2 3 4 5]", seen)
	}
	if sp.Pending() != pending || pending != 4 {
		t.Fatalf("pending %d after scan, was %d, want 4: scan must not consume", sp.Pending(), pending)
	}
}
