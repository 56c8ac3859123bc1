package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// randomPayloads makes n payloads over the four sources: random bytes, truncated and bit-flipped valid
// payloads, wrong types, NaN, far-future timestamps, oversized payloads, unknown units, and some valid ones.
func randomPayloads(n int, seed uint64) []message {
	rng := rand.New(rand.NewPCG(seed, 7))
	now := time.Now()
	valid, _ := formatCases(now.Add(-10 * time.Minute))
	templates := []func(int) message{
		func(i int) message {
			return message{fmt.Sprintf("hv/bruit-%d/up", i%50), randBytes(rng, rng.IntN(200))}
		},
		func(i int) message { return message{"hv/lp", randBytes(rng, rng.IntN(200))} },
		func(i int) message {
			return message{fmt.Sprintf("application/1/device/%016x/event/up", i%50), randBytes(rng, rng.IntN(300))}
		},
		func(i int) message {
			return message{fmt.Sprintf("v3/a/devices/d%d/up", i%50), randBytes(rng, rng.IntN(300))}
		},
		func(i int) message { // a valid payload, truncated
			m := valid[rng.IntN(len(valid))]
			return message{m.topic, m.payload[:rng.IntN(len(m.payload))]}
		},
		func(i int) message { // a valid payload with bytes flipped
			m := valid[rng.IntN(len(valid))]
			p := append([]byte(nil), m.payload...)
			for range 1 + rng.IntN(4) {
				p[rng.IntN(len(p))] = byte(rng.IntN(256))
			}
			return message{m.topic, p}
		},
		func(i int) message { return message{"hv/types/up", []byte(`{"power_w":"beaucoup","energy_kwh":[1]}`)} },
		func(i int) message { return message{"hv/lp", []byte("meter,device=nan power_w=NaN")} },
		func(i int) message {
			return message{"hv/futur/up", fmt.Appendf(nil, `{"ts":%d,"power_w":1}`, now.Add(time.Hour).UnixMilli())}
		},
		func(i int) message { return message{"hv/unite/up", []byte(`[{"n":"energy","u":"furlong","v":1}]`)} },
		func(i int) message {
			return message{"hv/enorme/up", []byte(`{"power_w":1,"x":"` + strings.Repeat("a", 300<<10) + `"}`)}
		},
		func(i int) message { return valid[rng.IntN(len(valid))] },
	}
	msgs := make([]message, n)
	for i := range msgs {
		msgs[i] = templates[rng.IntN(len(templates))](i)
	}
	return msgs
}

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.IntN(256))
	}
	return b
}

// TestRandomPayloadsIntegration: 10 000 random payloads leave the service healthy, every message counted,
// every invalid one dead-lettered.
func TestRandomPayloadsIntegration(t *testing.T) {
	const n = 10_000
	svc := startService(t, serviceOptions{})

	// Count the dead letters as a client of the broker would.
	var dead atomic.Int64
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(svc.Broker).SetClientID("e2e-deadletters"))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	if tok := sub.Subscribe("hv/deadletter/#", 1, func(paho.Client, paho.Message) { dead.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}

	pub := newPublisher(t, svc.Broker, "e2e-random")
	if err := pub.publishAll(context.Background(), randomPayloads(n, 42), 8); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every message counted", func() (bool, string) {
		total := svc.metricValue("hyperviseur_ingest_messages_total")
		return total == n, fmt.Sprintf("%g counted", total)
	})
	invalid := svc.metricValue("hyperviseur_ingest_messages_total", "outcome", "invalid")
	if invalid < n/2 {
		t.Errorf("only %g of %d random payloads were invalid: the generator is not doing its job", invalid, n)
	}
	eventually(t, 30*time.Second, "every invalid message dead-lettered", func() (bool, string) {
		return float64(dead.Load()) == invalid, fmt.Sprintf("%d dead letters for %g invalid", dead.Load(), invalid)
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(svc.HTTP + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s after the storm: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	// The service still stores good data. Hours back: truncated random payloads lost their timestamp and
	// were stored at their receive time, which must not fall in the window checked.
	checkFormats(t, svc, time.Now().Add(-3*time.Hour))
}
