package live

import (
	"context"
	"testing"

	hv "github.com/useda02/hyperviseur"
)

// TestHubDropsSlowSubscriber: a subscriber that does not read is dropped once its buffer is full, and the
// others keep receiving; publishing never blocks.
func TestHubDropsSlowSubscriber(t *testing.T) {
	h := NewHub()
	slow := h.Subscribe(Filter{AllEPCIs: true}, 2)
	fast := h.Subscribe(Filter{AllEPCIs: true}, 100)
	r := []hv.Reading{{Device: "d", Metric: hv.PowerW, Value: 1}}
	for range 5 {
		h.PublishReadings(r)
		<-fast.C()
	}
	if h.Subscribers() != 1 || h.Dropped() != 1 {
		t.Fatalf("%d subscribers, %d dropped; want the slow one dropped", h.Subscribers(), h.Dropped())
	}
	n := 0
	for range slow.C() { // its two buffered events, then closed
		n++
	}
	if n != 2 {
		t.Fatalf("slow subscriber got %d events before being closed, want 2", n)
	}
	h.Unsubscribe(slow) // again: harmless
	h.Unsubscribe(fast)
	if _, ok := <-fast.C(); ok {
		t.Fatal("unsubscribed feed still open")
	}
}

func TestHubFilters(t *testing.T) {
	h := NewHub()
	laon := h.Subscribe(Filter{EPCIs: []string{"200043495"}, Metrics: []hv.Metric{hv.PowerW}}, 10)
	none := h.Subscribe(Filter{}, 10) // no scope: sees nothing
	h.PublishReadings([]hv.Reading{
		{Device: "a", Metric: hv.PowerW, EPCI: "200043495"},
		{Device: "b", Metric: hv.EnergyKWh, EPCI: "200043495"},
		{Device: "c", Metric: hv.PowerW, EPCI: "200071892"},
		{Device: "ghost", Metric: hv.PowerW},
	})
	_ = h.Notify(context.Background(), []hv.Alert{{Fingerprint: "x", Labels: map[string]string{"epci": "200071892"}},
		{Fingerprint: "y", Labels: map[string]string{"epci": "200043495", "device": "a"}}})
	e := <-laon.C()
	if len(e.Readings) != 1 || e.Readings[0].Device != "a" {
		t.Fatalf("laon got %+v", e)
	}
	if e = <-laon.C(); e.Alert == nil || e.Alert.Fingerprint != "y" {
		t.Fatalf("laon got %+v, want alert y", e)
	}
	select {
	case e := <-none.C():
		t.Fatalf("a subscriber with no scope got %+v", e)
	default:
	}
}
