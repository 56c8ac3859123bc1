package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigBad: each bad file fails at load with an error naming the key.
func TestConfigBad(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"driver.bad.yml", `storage.driver: want embedded or influxdb, got "cassandra"`},
		{"listen.bad.yml", `http.listen: want host:port`},
		{"unknown_key.bad.yml", `retencion`},
		{"format.bad.yml", `mqtt.topics[0].format: unknown format "protobuf"`},
		{"broker.bad.yml", `mqtt.broker: want a URL`},
		{"influx_url.bad.yml", `storage.influxdb.url`},
		{"batch.bad.yml", `ingest.batch_size: must be positive`},
		{"embedded_open.bad.yml", `mqtt.embedded.users: the embedded broker listens on 0.0.0.0`},
		{"pilote_scope.bad.yml", `auth.tokens[0].epcis: a pilote needs at least one EPCI code`},
		{"tls_half.bad.yml", `http.tls_key: http.tls_cert and http.tls_key go together`},
		{"tls_missing.bad.yml", `http.tls_cert: testdata/no-such-cert.pem: not a readable file`},
		{"session_idle.bad.yml", `auth.session_idle: must be at least 1m`},
		{"session_max.bad.yml", `auth.session_max: must be from auth.session_idle (8h0m0s)`},
		{"admin_password.bad.yml", `auth.admin_password: password: at least 12 characters`},
		{"retention.bad.yml", `storage.retention: must be at least 24h`},
		{"dup_source.bad.yml", `mqtt.topics[1].name: "a" is used twice`},
		{"origins.bad.yml", `http.allowed_origins: want scheme://host[:port]`},
		{"map_tiles.bad.yml", `http.map_tiles: tile URL "https://tiles.example.org/{z}/{x}.png": want the placeholders {z}, {x} and {y}`},
		{"map_attribution.bad.yml", `http.map_attribution: a tile provider's licence asks for its attribution`},
		{"webhook.bad.yml", `notify.webhooks[0].url: want http(s)://host/path`},
		{"rules_interval.bad.yml", `rules.interval: must be at least 1s`},
		{"lighting_attempts.bad.yml", `lighting.max_attempts: must be 1 to 20`},
		{"gas_pcs.bad.yml", `reporting.gas_pcs_kwh_per_m3: invalid: must be 5 to 15`},
		{"heating_share.bad.yml", `reporting.heating_share.electricity`},
		{"bacs_months_kept.bad.yml", `reporting.bacs_months_kept: invalid: must be 60 (five years, the décret BACS) to 1200, got 24`},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := LoadConfig("testdata/" + tt.file)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("LoadConfig(%s) error = %v, want it to contain %q", tt.file, err, tt.want)
			}
		})
	}
}

// TestConfigReporting: the reporting section decodes over its defaults, reference DJU keyed by year.
func TestConfigReporting(t *testing.T) {
	cfg, err := LoadConfig("testdata/reporting.yml")
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Reporting
	if !r.Enabled || r.GasPCS != 10.9 || r.ReferenceDJU[2015] != 2300 || r.ReferenceDJU[2016] != 2450 || r.HeatingShare["gas"] != 0.8 ||
		r.Years != 6 || r.RefreshEvery != 30*time.Second {
		t.Errorf("reporting config %+v", r)
	}
}

func TestConfigDefaultsFileEnv(t *testing.T) {
	cfg, err := LoadConfig("")
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if cfg.Storage.Driver != "embedded" || cfg.MQTT.Broker != "" || len(cfg.MQTT.Topics) != 4 || cfg.Spool.Path != "data/spool" {
		t.Fatalf("defaults are not the embedded ones: %+v", cfg)
	}
	if cfg.Ingest.MaxPayload != 256*1024 || cfg.Ingest.MaxFuture != 5*time.Minute {
		t.Fatalf("ingest defaults: %+v", cfg.Ingest)
	}

	// The shipped reference file loads, and the environment wins over it.
	t.Setenv("HV_HTTP_LISTEN", "127.0.0.1:18080")
	t.Setenv("HV_STORAGE_INFLUXDB_BUCKET", "hv/autogen")
	t.Setenv("HV_INGEST_FLUSH_INTERVAL", "20ms")
	cfg, err = LoadConfig("../../configs/hyperviseur.yaml")
	if err != nil {
		t.Fatalf("configs/hyperviseur.yaml: %v", err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:18080" || cfg.Storage.InfluxDB.Bucket != "hv/autogen" || cfg.Ingest.FlushInterval != 20*time.Millisecond {
		t.Fatalf("environment did not override: listen=%s bucket=%s flush=%s", cfg.HTTP.Listen, cfg.Storage.InfluxDB.Bucket, cfg.Ingest.FlushInterval)
	}

	t.Setenv("HV_STORAGE_DRIVER", "mongodb")
	if _, err := LoadConfig(""); err == nil || !strings.Contains(err.Error(), "storage.driver") {
		t.Fatalf("bad env value: err = %v, want one naming storage.driver", err)
	}
}
