package live

import (
	"context"
	"fmt"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

func boardReading(dev, commune string, f hv.Fluid, m hv.Metric, t time.Time, v float64) hv.Reading {
	return hv.Reading{Device: dev, Site: "site-" + dev, Commune: commune, EPCI: "epci-" + commune, Fluid: f, Metric: m,
		Value: v, Time: t.UnixMilli()}
}

// TestBoard: communes sum their devices' newest power by fluid; a flush carries each changed device and
// commune once, with the newest values; a late reading does not overwrite a newer one; deltas are left out;
// alerts count per commune until resolved; a device not heard within the window leaves the sum.
func TestBoard(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	b := NewBoard(time.Hour, func() time.Time { return now })
	b.Observe([]hv.Reading{
		boardReading("e1", "02408", hv.Electricity, hv.PowerW, now.Add(-time.Minute), 1000),
		boardReading("e1", "02408", hv.Electricity, hv.PowerW, now, 1500), // the newest of the batch
		boardReading("e2", "02408", hv.Electricity, hv.PowerW, now, 250),
		boardReading("h1", "02408", hv.Heat, hv.PowerW, now, 4000),
		boardReading("e3", "02691", hv.Electricity, hv.PowerW, now, 700),
		boardReading("e3", "02691", hv.Electricity, hv.EnergyKWh.Delta(), now, 0.1),
		boardReading("e3", "02691", hv.Electricity, hv.EnergyKWh, now, 12345),
		{Device: "ghost", Metric: hv.PowerW, Value: 7, Time: now.UnixMilli()}, // unregistered: no commune
	})
	ch := b.Flush()
	if len(ch.Devices) != 4 || len(ch.Communes) != 2 || ch.Seq != 1 {
		t.Fatalf("first flush: %+v", ch)
	}
	laon := ch.Communes[0]
	if laon.Commune != "02408" || laon.EPCI != "epci-02408" || laon.PowerW[hv.Electricity] != 1750 || laon.PowerW[hv.Heat] != 4000 || laon.Devices != 3 {
		t.Errorf("Laon: %+v, want 1 750 W electricity, 4 000 W heat, 3 devices", laon)
	}
	e3 := ch.Devices[2]
	if e3.Device != "e3" || len(e3.Values) != 2 || e3.Values[hv.EnergyKWh] != 12345 {
		t.Errorf("e3: %+v, want power and index, no delta", e3)
	}
	if ch := b.Flush(); !ch.Empty() || ch.Seq != 2 {
		t.Errorf("nothing changed, flush %+v", ch)
	}

	// A late reading of e1 is ignored; a new one for e2 changes e2 and Laon only.
	b.Observe([]hv.Reading{
		boardReading("e1", "02408", hv.Electricity, hv.PowerW, now.Add(-2*time.Minute), 9999),
		boardReading("e2", "02408", hv.Electricity, hv.PowerW, now.Add(time.Second), 500),
	})
	ch = b.Flush()
	if len(ch.Devices) != 1 || ch.Devices[0].Device != "e2" || len(ch.Communes) != 1 || ch.Communes[0].PowerW[hv.Electricity] != 2000 {
		t.Errorf("after e2 changed: %+v, want e2 alone (e1's reading is late) and Laon at 1 500 + 500 W", ch)
	}

	// Alerts: two firing in Saint-Quentin, one resolved later.
	a1 := hv.Alert{Fingerprint: "a1", Severity: hv.SeverityCritical, State: hv.AlertFiring, Labels: map[string]string{"commune": "02691", "epci": "epci-02691"}}
	a2 := hv.Alert{Fingerprint: "a2", Severity: hv.SeverityWarning, State: hv.AlertPending, Labels: map[string]string{"commune": "02691"}}
	_ = b.Notify(context.Background(), []hv.Alert{a1, a2})
	ch = b.Flush()
	if len(ch.Alerts) != 2 || len(ch.Communes) != 1 || ch.Communes[0].Alerts[hv.SeverityCritical] != 1 || ch.Communes[0].Alerts[hv.SeverityWarning] != 1 {
		t.Errorf("alerts raised: %+v", ch)
	}
	a1.State = hv.AlertResolved
	_ = b.Notify(context.Background(), []hv.Alert{a1})
	ch = b.Flush()
	if len(ch.Alerts) != 1 || ch.Alerts[0].State != hv.AlertResolved || ch.Communes[0].Alerts[hv.SeverityCritical] != 0 {
		t.Errorf("alert resolved: %+v", ch)
	}
	if open := b.Alerts(func(*hv.Alert) bool { return true }); len(open) != 1 || open[0].Fingerprint != "a2" {
		t.Errorf("open alerts %+v, want a2", open)
	}

	// Two hours later, with no reading since: every device is stale, the full recompute says so.
	now = now.Add(2 * time.Hour)
	ch = b.Flush()
	if len(ch.Communes) != 2 || ch.Communes[0].Devices != 0 || ch.Communes[0].Stale != 3 || len(ch.Communes[0].PowerW) != 0 {
		t.Errorf("stale: %+v", ch.Communes)
	}
	got := b.Communes(func(c, epci string) bool { return epci == "epci-02691" })
	if len(got) != 1 || got[0].Commune != "02691" || got[0].Alerts[hv.SeverityWarning] != 1 {
		t.Errorf("Communes(Saint-Quentin) = %+v", got)
	}
	if devs := b.Devices(func(d *DeviceState) bool { return d.Commune == "02408" }); len(devs) != 3 || devs[0].Device != "e1" || devs[0].Values[hv.PowerW] != 1500 {
		t.Errorf("Devices(Laon) = %+v", devs)
	}
}

// TestBoardBacklog: a device is live while its readings arrive, whatever their stamps (a backlog emptied
// after an outage counts), but a seeded value as old as its stamp.
func TestBoardBacklog(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	b := NewBoard(time.Hour, func() time.Time { return now })
	b.Observe([]hv.Reading{boardReading("late", "02408", hv.Electricity, hv.PowerW, now.Add(-3*time.Hour), 700)})
	b.Seed([]hv.Reading{
		boardReading("old", "02408", hv.Electricity, hv.PowerW, now.Add(-3*time.Hour), 100),
		boardReading("recent", "02408", hv.Electricity, hv.PowerW, now.Add(-time.Minute), 20),
	})
	c := b.Flush().Communes[0]
	if c.PowerW[hv.Electricity] != 720 || c.Devices != 2 || c.Stale != 1 {
		t.Errorf("Laon %+v, want 700 W (backlog received now) + 20 W (seeded, recent), the 3-hour-old seed stale", c)
	}
}

// TestBoardFollowResubscribes: a board dropped by the hub for falling behind subscribes again and marks
// everything changed, so clients receive the whole state once more.
func TestBoardFollowResubscribes(t *testing.T) {
	hub := NewHub()
	b := NewBoard(time.Hour, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b.Follow(ctx, hub, 1) }()
	now := time.Now()
	deadline := time.Now().Add(5 * time.Second)
	for hub.Subscribers() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	hub.PublishReadings([]hv.Reading{boardReading("e1", "02408", hv.Electricity, hv.PowerW, now, 10)})
	for len(b.Devices(func(*DeviceState) bool { return true })) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	b.Flush()
	// Overflow its buffer of 1 until the hub drops it.
	for b.Resubscribed() == 0 && time.Now().Before(deadline) {
		for i := range 50 {
			hub.PublishReadings([]hv.Reading{boardReading("e2", "02408", hv.Electricity, hv.PowerW, now, float64(i))})
		}
		time.Sleep(time.Millisecond)
	}
	if b.Resubscribed() == 0 {
		t.Fatal("never dropped by the hub")
	}
	ch := b.Flush()
	found := false
	for _, d := range ch.Devices {
		found = found || d.Device == "e1"
	}
	if !found {
		t.Errorf("after a resubscription e1 (unchanged) is not sent again: %+v", ch.Devices)
	}
	cancel()
	<-done
}

// BenchmarkBoard100k: 100 000 devices in 797 communes. "full": all report once (batches of 1 000), then a
// flush takes every device and commune — the worst tick, the whole fleet changing at once. "tick": the
// département's steady rate, 200 readings a second, so 50 readings per 250 ms tick, then the flush.
func BenchmarkBoard100k(b *testing.B) {
	now := time.Now()
	batches := make([][]hv.Reading, 100)
	for i := range 100_000 {
		c := fmt.Sprintf("02%03d", i%797)
		batches[i/1000] = append(batches[i/1000], boardReading(fmt.Sprintf("dev-%06d", i), c, hv.Electricity, hv.PowerW, now, float64(i%500)))
	}
	board := NewBoard(time.Hour, nil)
	for _, rs := range batches {
		board.Observe(rs)
	}
	board.Flush()
	bump := func(rs []hv.Reading) {
		for j := range rs {
			rs[j].Value++
			rs[j].Time++
		}
		board.Observe(rs)
	}
	b.Run("full", func(b *testing.B) {
		b.ReportAllocs()
		var ch Changes
		for b.Loop() {
			for _, rs := range batches {
				bump(rs)
			}
			ch = board.Flush()
		}
		if len(ch.Devices) != 100_000 || len(ch.Communes) != 797 {
			b.Fatalf("flush: %d devices, %d communes", len(ch.Devices), len(ch.Communes))
		}
	})
	b.Run("tick", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		var ch Changes
		for b.Loop() {
			rs := batches[i%100][(i/100)%20*50 : (i/100)%20*50+50]
			i++
			bump(rs)
			ch = board.Flush()
		}
		if len(ch.Devices) != 50 {
			b.Fatalf("flush: %d devices, want 50", len(ch.Devices))
		}
	})
}
