package e2e

import (
	"context"
	"fmt"
	"math"
	"net/url"
	"testing"
	"time"

	"github.com/useda02/hyperviseur/internal/testenv"
)

// wantReading is what one published format must come back as from /api/v1/series.
type wantReading struct {
	device, metric, unit string
	value                float64
	epci                 string // "" for an unregistered device
}

// formatCases publishes one message per payload format at time ts, for devices of the embedded demo registry
// (configs/registry.yaml), and says what the API must return.
func formatCases(ts time.Time) ([]message, []wantReading) {
	sec := ts.Unix()
	ms := ts.UnixMilli()
	rfc := ts.UTC().Format(time.RFC3339Nano)
	msgs := []message{
		// flat JSON, Unix ms timestamp, canonical keys.
		{"hv/elec-mairie-laon/up", fmt.Appendf(nil, `{"ts":%d,"energy_kwh":1234.5,"power_w":5000}`, ms)},
		// SenML with a base name and time, an alias name and litres.
		{"hv/gaz-mairie-laon/up", fmt.Appendf(nil, `[{"bn":"gaz-mairie-laon/","bt":%d,"n":"volume","u":"L","v":12345}]`, sec)},
		// SenML from a device the registry does not know: stored with no site; Wh converted to kWh.
		{"hv/inconnu-42/up", fmt.Appendf(nil, `[{"n":"energy","u":"Wh","v":5000,"t":%d}]`, sec)},
		// Line protocol with a nanosecond timestamp and an integer field.
		{"hv/lp", fmt.Appendf(nil, "meter,device=lp-ecole-saint-quentin-elec energy_kwh=100.5,power_w=2300i %d\n", ts.UnixNano())},
		// ChirpStack v4: devEui upper-case in the envelope, codec key mapped by the device profile (litres).
		{"application/7/device/0018b24441524632/event/up", fmt.Appendf(nil,
			`{"time":%q,"deviceInfo":{"devEui":"0018B24441524632","deviceProfileName":"adeunis-pulse"},"object":{"counter_a":4321}}`, rfc)},
		// The Things Stack v3: profile keys, a kW power and a device-specific key.
		{"v3/chauffage@ttn/devices/chaufferie-gymnase-soissons/up", fmt.Appendf(nil,
			`{"end_device_ids":{"device_id":"chaufferie-gymnase-soissons"},"received_at":%q,"uplink_message":{"received_at":%q,"decoded_payload":{"heat_energy":800,"power":12.5,"t_return":45.5}}}`, rfc, rfc)},
	}
	const laon, stQuentin, soissons = "200043495", "200071892", "240200477"
	want := []wantReading{
		{"elec-mairie-laon", "energy_kwh", "kWh", 1234.5, laon},
		{"elec-mairie-laon", "power_w", "W", 5000, laon},
		{"gaz-mairie-laon", "volume_m3", "m3", 12.345, laon},
		{"inconnu-42", "energy_kwh", "kWh", 5, ""},
		{"lp-ecole-saint-quentin-elec", "energy_kwh", "kWh", 100.5, stQuentin},
		{"lp-ecole-saint-quentin-elec", "power_w", "W", 2300, stQuentin},
		{"0018b24441524632", "volume_m3", "m3", 4.321, stQuentin},
		{"chaufferie-gymnase-soissons", "heat_kwh", "kWh", 800, soissons},
		{"chaufferie-gymnase-soissons", "power_w", "W", 12500, soissons},
		{"chaufferie-gymnase-soissons", "temperature_c", "Cel", 45.5, soissons},
	}
	return msgs, want
}

func TestFormatsIntegration(t *testing.T) {
	t.Run("mosquitto+influxdb", func(t *testing.T) {
		mq := testenv.StartMosquitto(t)
		db := testenv.StartInfluxDB(t)
		db.CreateDB(t, "formats")
		svc := startService(t, serviceOptions{Broker: mq.URL, InfluxDB: db.URL, Bucket: "formats/autogen"})
		checkFormats(t, svc, time.Now().Add(-time.Minute))
	})
	t.Run("embedded", func(t *testing.T) {
		svc := startService(t, serviceOptions{})
		checkFormats(t, svc, time.Now().Add(-time.Minute))
	})
}

// checkFormats publishes every format at time at and checks the API returns each canonical value.
func checkFormats(t *testing.T, svc *service, at time.Time) {
	ts := at.Truncate(time.Second)
	msgs, want := formatCases(ts)
	pub := newPublisher(t, svc.Broker, "e2e-formats")
	if err := pub.publishAll(context.Background(), msgs, 1); err != nil {
		t.Fatal(err)
	}
	for _, w := range want {
		t.Run(w.device+"/"+w.metric, func(t *testing.T) {
			q := url.Values{"device": {w.device}, "metric": {w.metric},
				"from": {ts.Add(-time.Minute).Format(time.RFC3339)}, "to": {ts.Add(time.Minute).Format(time.RFC3339)}}
			eventually(t, 10*time.Second, "reading stored", func() (bool, string) {
				var r seriesResponse
				if code := svc.get("/api/v1/series", q, &r); code != 200 {
					return false, fmt.Sprintf("HTTP %d", code)
				}
				if len(r.Series) != 1 || len(r.Series[0].Points) != 1 {
					return false, fmt.Sprintf("%+v", r.Series)
				}
				s := r.Series[0]
				p := s.Points[0]
				if p.T != ts.UnixMilli() || math.Abs(p.V-w.value) > 1e-9 || s.Unit != w.unit || s.EPCI != w.epci {
					return false, fmt.Sprintf("got t=%d v=%g unit=%q epci=%q, want t=%d v=%g unit=%q epci=%q",
						p.T, p.V, s.Unit, s.EPCI, ts.UnixMilli(), w.value, w.unit, w.epci)
				}
				return true, ""
			})
		})
	}
	// Every decoder counted its message as ok, and the unknown device is listed as unregistered.
	for _, src := range []string{"hv", "lp", "chirpstack", "tts"} {
		if n := svc.metricValue("hyperviseur_ingest_messages_total", "source", src, "outcome", "ok"); n < 1 {
			t.Errorf("source %s: ok messages = %g, want ≥ 1", src, n)
		}
	}
	var devices struct {
		Unregistered []struct {
			ID    string `json:"id"`
			Count int    `json:"count"`
		} `json:"unregistered"`
	}
	svc.get("/api/v1/devices", nil, &devices)
	found := false
	for _, d := range devices.Unregistered {
		found = found || (d.ID == "inconnu-42" && d.Count >= 1)
	}
	if !found {
		t.Errorf("inconnu-42 not in the unregistered list: %+v", devices.Unregistered)
	}
}
