package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/useda02/hyperviseur/dashboard"
	"github.com/useda02/hyperviseur/ingest/decode"
	"github.com/useda02/hyperviseur/internal/users"
	"github.com/useda02/hyperviseur/reporting"
)

// Config is the whole service configuration. Every key is also HV_<SECTION>_<KEY> in the environment.
type Config struct {
	HTTP     HTTPConfig     `mapstructure:"http"`
	MQTT     MQTTConfig     `mapstructure:"mqtt"`
	Storage  StorageConfig  `mapstructure:"storage"`
	Spool    SpoolConfig    `mapstructure:"spool"`
	Ingest   IngestConfig   `mapstructure:"ingest"`
	Registry RegistryConfig `mapstructure:"registry"`
	Auth     AuthConfig     `mapstructure:"auth"`
	Rules    RulesConfig    `mapstructure:"rules"`
	Notify   NotifyConfig   `mapstructure:"notify"`
	Lighting LightingConfig `mapstructure:"lighting"`
	// Reporting is the consumption analytics (package reporting): daily rollups kept exact, climate correction.
	Reporting ReportingConfig `mapstructure:"reporting"`
	Log       LogConfig       `mapstructure:"log"`
}

type HTTPConfig struct {
	Listen string `mapstructure:"listen"`
	// AllowedOrigins are browser origins (scheme://host[:port]), besides the server's own, whose pages may
	// open the live websocket: a dashboard served from another host.
	AllowedOrigins []string `mapstructure:"allowed_origins"`
	// TLSCert and TLSKey (PEM files, both or neither) serve HTTPS; the session cookie is then Secure.
	TLSCert string `mapstructure:"tls_cert"`
	TLSKey  string `mapstructure:"tls_key"`
	// SecureCookies marks the session cookie Secure on plain HTTP too: TLS ends at a reverse proxy.
	SecureCookies bool `mapstructure:"secure_cookies"`
	// MapTiles is a raster tile URL template (https://…/{z}/{x}/{y}.png, Web Mercator, 256 px) drawn under the
	// dashboard's map, with MapAttribution shown on it (the tile provider's licence requires it). Empty: the
	// map is the commune outlines alone and the page loads nothing from another site.
	MapTiles       string `mapstructure:"map_tiles"`
	MapAttribution string `mapstructure:"map_attribution"`
}

type MQTTConfig struct {
	Broker   string         `mapstructure:"broker"` // empty: the embedded broker
	ClientID string         `mapstructure:"client_id"`
	Username string         `mapstructure:"username"`
	Password string         `mapstructure:"password"`
	Topics   []TopicConfig  `mapstructure:"topics"`
	Embedded EmbeddedConfig `mapstructure:"embedded"`
}

type TopicConfig struct {
	Name   string `mapstructure:"name"`
	Topic  string `mapstructure:"topic"`
	Format string `mapstructure:"format"`
}

type EmbeddedConfig struct {
	Listen string             `mapstructure:"listen"`
	Users  []EmbeddedUserConf `mapstructure:"users"`
}

type EmbeddedUserConf struct {
	Username string `mapstructure:"username"`
	Password string `mapstructure:"password"`
}

type StorageConfig struct {
	Driver    string         `mapstructure:"driver"` // embedded | influxdb
	Path      string         `mapstructure:"path"`
	Retention time.Duration  `mapstructure:"retention"`
	InfluxDB  InfluxDBConfig `mapstructure:"influxdb"`
}

type InfluxDBConfig struct {
	URL       string        `mapstructure:"url"`
	Token     string        `mapstructure:"token"`
	Org       string        `mapstructure:"org"`
	Bucket    string        `mapstructure:"bucket"`
	GZip      bool          `mapstructure:"gzip"`
	Timeout   time.Duration `mapstructure:"timeout"`
	BatchSize int           `mapstructure:"batch_size"`
}

type SpoolConfig struct {
	Path     string `mapstructure:"path"`
	MaxBytes int64  `mapstructure:"max_bytes"`
}

type IngestConfig struct {
	BatchSize     int           `mapstructure:"batch_size"`
	FlushInterval time.Duration `mapstructure:"flush_interval"`
	Writers       int           `mapstructure:"writers"`
	QueueSize     int           `mapstructure:"queue_size"`
	MaxPayload    int           `mapstructure:"max_payload"`
	MaxFuture     time.Duration `mapstructure:"max_future"`
	WriteTimeout  time.Duration `mapstructure:"write_timeout"`
}

type RegistryConfig struct {
	Files []string `mapstructure:"files"` // empty: the embedded demo registry
}

type RulesConfig struct {
	// Files are rule files (YAML); empty: the embedded default set (configs/rules). They are watched: an
	// edit is reloaded, and an invalid one refused while the previous rules keep running.
	Files    []string      `mapstructure:"files"`
	Interval time.Duration `mapstructure:"interval"` // evaluation interval of every rule
}

// ReportingConfig is the reporting package's configuration, with a switch.
type ReportingConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// References is the décret tertiaire references file (reporting/references.go): each building's declared
	// reference year and consumption. Empty: none (the demo generates its fleet's).
	References       string `mapstructure:"tertiaire_references"`
	reporting.Config `mapstructure:",squash"`
}

// LightingConfig drives street-lighting control (package lighting).
type LightingConfig struct {
	Enabled bool `mapstructure:"enabled"`
	// Files are lighting plans (programs, calendars, groups, decrees; YAML); empty: the embedded default
	// (configs/lighting). Programs edited through the API are kept in the state database on top of them.
	Files        []string      `mapstructure:"files"`
	AckTimeout   time.Duration `mapstructure:"ack_timeout"`   // first resend of an unacknowledged command
	MaxAttempts  int           `mapstructure:"max_attempts"`  // sends before giving up on an ack
	OfflineAfter time.Duration `mapstructure:"offline_after"` // a controller unheard this long gets its commands on return
	Nights       int           `mapstructure:"nights"`        // nights of program pushed ahead
}

type NotifyConfig struct {
	MQTT     bool            `mapstructure:"mqtt"` // alerts on hv/alerts/<severity>
	Webhooks []WebhookConfig `mapstructure:"webhooks"`
	Email    EmailConfig     `mapstructure:"email"`
}

// RouteConfig restricts a notifier to some severities and EPCIs (empty: all).
type RouteConfig struct {
	Severities []string `mapstructure:"severities"`
	EPCIs      []string `mapstructure:"epcis"`
}

type WebhookConfig struct {
	Name        string `mapstructure:"name"`
	URL         string `mapstructure:"url"`
	Secret      string `mapstructure:"secret"` // HMAC key of the X-Hyperviseur-Signature header; never logged
	RouteConfig `mapstructure:",squash"`
}

type EmailConfig struct {
	Addr        string        `mapstructure:"addr"` // empty: no e-mail
	From        string        `mapstructure:"from"`
	To          []string      `mapstructure:"to"`
	Username    string        `mapstructure:"username"`
	Password    string        `mapstructure:"password"` // never logged
	Every       time.Duration `mapstructure:"every"`
	RouteConfig `mapstructure:",squash"`
}

type AuthConfig struct {
	// Tokens are API tokens stored as SHA-256; with none, a bootstrap admin token is generated at start into
	// <storage.path>/admin.token (mode 0600) and never logged.
	Tokens []TokenConf `mapstructure:"tokens"`
	// AdminPassword is the password of the user "admin" created when there is no user yet; empty: a
	// generated one written to <storage.path>/admin.password (mode 0600), never logged.
	AdminPassword string `mapstructure:"admin_password"`
	// SessionIdle ends a browser session unused this long; SessionMax ends it this long after the login.
	SessionIdle time.Duration `mapstructure:"session_idle"`
	SessionMax  time.Duration `mapstructure:"session_max"`
}

type TokenConf struct {
	Name   string   `mapstructure:"name"`
	Role   string   `mapstructure:"role"`
	EPCIs  []string `mapstructure:"epcis"`
	SHA256 string   `mapstructure:"sha256"`
}

type LogConfig struct {
	Level  string `mapstructure:"level"`  // debug | info | warn | error
	Format string `mapstructure:"format"` // text | json
}

// defaults are the embedded defaults: `hyperviseur serve` with no file runs everything in-process.
func defaults(v *viper.Viper) {
	v.SetDefault("http.listen", "127.0.0.1:8080")
	v.SetDefault("http.allowed_origins", []string{})
	v.SetDefault("http.tls_cert", "")
	v.SetDefault("http.tls_key", "")
	v.SetDefault("http.secure_cookies", false)
	v.SetDefault("http.map_tiles", "")
	v.SetDefault("http.map_attribution", "")
	v.SetDefault("mqtt.broker", "")
	v.SetDefault("mqtt.client_id", "hyperviseur")
	v.SetDefault("mqtt.username", "")
	v.SetDefault("mqtt.password", "")
	v.SetDefault("mqtt.topics", []map[string]any{
		{"name": "hv", "topic": "hv/+/up", "format": "json"},
		{"name": "lp", "topic": "hv/lp", "format": "lineprotocol"},
		{"name": "chirpstack", "topic": "application/+/device/+/event/up", "format": "chirpstack"},
		{"name": "tts", "topic": "v3/+/devices/+/up", "format": "tts"},
	})
	v.SetDefault("mqtt.embedded.listen", "127.0.0.1:1883")
	v.SetDefault("mqtt.embedded.users", []map[string]any{})
	v.SetDefault("storage.driver", "embedded")
	v.SetDefault("storage.path", "data")
	v.SetDefault("storage.retention", "9600h") // 400 days: 13 months for year-over-year
	v.SetDefault("storage.influxdb.url", "http://127.0.0.1:8086")
	v.SetDefault("storage.influxdb.token", "")
	v.SetDefault("storage.influxdb.org", "hyperviseur")
	v.SetDefault("storage.influxdb.bucket", "hyperviseur")
	v.SetDefault("storage.influxdb.gzip", true)
	v.SetDefault("storage.influxdb.timeout", "10s")
	v.SetDefault("storage.influxdb.batch_size", 5000)
	v.SetDefault("spool.path", "")
	v.SetDefault("spool.max_bytes", int64(1<<30))
	v.SetDefault("ingest.batch_size", 2000)
	v.SetDefault("ingest.flush_interval", "50ms")
	v.SetDefault("ingest.writers", 2)
	v.SetDefault("ingest.queue_size", 4096)
	v.SetDefault("ingest.max_payload", 256*1024)
	v.SetDefault("ingest.max_future", "5m")
	v.SetDefault("ingest.write_timeout", "10s")
	v.SetDefault("registry.files", []string{})
	v.SetDefault("auth.tokens", []map[string]any{})
	v.SetDefault("auth.admin_password", "")
	v.SetDefault("auth.session_idle", "8h")
	v.SetDefault("auth.session_max", "168h")
	v.SetDefault("rules.files", []string{})
	v.SetDefault("rules.interval", "1m")
	rd := reporting.DefaultConfig()
	v.SetDefault("reporting.enabled", true)
	v.SetDefault("reporting.tertiaire_references", "")
	v.SetDefault("reporting.years", rd.Years)
	v.SetDefault("reporting.chunk_days", rd.ChunkDays)
	v.SetDefault("reporting.refresh_every", rd.RefreshEvery.String())
	v.SetDefault("reporting.recheck_every", rd.RecheckEvery.String())
	v.SetDefault("reporting.recent_days", rd.RecentDays)
	v.SetDefault("reporting.max_device_filter", rd.MaxDeviceFilter)
	v.SetDefault("reporting.gas_pcs_kwh_per_m3", rd.GasPCS)
	v.SetDefault("reporting.dju_base", rd.DJUBase)
	v.SetDefault("reporting.heating_share", map[string]float64{"gas": 1, "heat": 1})
	v.SetDefault("reporting.max_hourly_days", rd.MaxHourlyDays)
	v.SetDefault("reporting.bacs_months_kept", rd.BACSMonthsKept)
	v.SetDefault("reporting.bacs_threshold_pct", rd.BACSThresholdPct)
	v.SetDefault("reporting.bacs_loss_months", rd.BACSLossMonths)
	v.SetDefault("lighting.enabled", true)
	v.SetDefault("lighting.files", []string{})
	v.SetDefault("lighting.ack_timeout", "10s")
	v.SetDefault("lighting.max_attempts", 5)
	v.SetDefault("lighting.offline_after", "15m")
	v.SetDefault("lighting.nights", 2)
	v.SetDefault("notify.mqtt", true)
	v.SetDefault("notify.webhooks", []map[string]any{})
	v.SetDefault("notify.email.addr", "")
	v.SetDefault("notify.email.from", "")
	v.SetDefault("notify.email.to", []string{})
	v.SetDefault("notify.email.username", "")
	v.SetDefault("notify.email.password", "")
	v.SetDefault("notify.email.every", "15m")
	v.SetDefault("notify.email.severities", []string{})
	v.SetDefault("notify.email.epcis", []string{})
	v.SetDefault("log.level", "info")
	v.SetDefault("log.format", "text")
}

// LoadConfig applies defaults, then the file (if any), then HV_* environment variables, then Validate.
func LoadConfig(file string) (*Config, error) {
	v := viper.New()
	defaults(v)
	v.SetEnvPrefix("HV")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("config %s: %w", file, err)
		}
	}
	var cfg Config
	err := v.Unmarshal(&cfg, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true // a misspelt key is an error, not a silent default
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(
			mapstructure.StringToTimeDurationHookFunc(), mapstructure.StringToSliceHookFunc(","),
			mapstructure.StringToTimeHookFunc(time.DateOnly), listOfMapsFromEnv)
	})
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if cfg.Spool.Path == "" {
		cfg.Spool.Path = cfg.Storage.Path + "/spool"
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// listOfMapsFromEnv refuses a string (an HV_* variable) where a list of objects is expected, so the error
// names the key instead of the value being silently ignored.
func listOfMapsFromEnv(from, to reflect.Type, data any) (any, error) {
	if from.Kind() == reflect.String && to.Kind() == reflect.Slice && to.Elem().Kind() == reflect.Struct {
		return nil, errors.New("a list of objects cannot be set from a string; set it in the config file")
	}
	return data, nil
}

// Validate checks every key and names the first bad one.
func (c *Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, args...))
	}
	for _, o := range c.HTTP.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.Path != "" || u.RawQuery != "" {
			return bad("http.allowed_origins", "want scheme://host[:port], got %q", o)
		}
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		return bad("http.listen", "want host:port, got %q", c.HTTP.Listen)
	}
	if t := c.HTTP.MapTiles; t != "" {
		if err := dashboard.CheckTileURL(t); err != nil {
			return bad("http.map_tiles", "%v", err)
		}
		if c.HTTP.MapAttribution == "" {
			return bad("http.map_attribution", "a tile provider's licence asks for its attribution: give it with http.map_tiles")
		}
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		key := "http.tls_key"
		if c.HTTP.TLSCert == "" {
			key = "http.tls_cert"
		}
		return bad(key, "http.tls_cert and http.tls_key go together: set both or neither")
	}
	for _, kf := range [][2]string{{"http.tls_cert", c.HTTP.TLSCert}, {"http.tls_key", c.HTTP.TLSKey}} {
		if kf[1] == "" {
			continue
		}
		if st, err := os.Stat(kf[1]); err != nil || !st.Mode().IsRegular() {
			return bad(kf[0], "%s: not a readable file", kf[1])
		}
	}
	if c.MQTT.Broker == "" {
		host, _, err := net.SplitHostPort(c.MQTT.Embedded.Listen)
		if err != nil {
			return bad("mqtt.embedded.listen", "want host:port, got %q", c.MQTT.Embedded.Listen)
		}
		if ip := net.ParseIP(host); len(c.MQTT.Embedded.Users) == 0 && (ip == nil || !ip.IsLoopback()) && host != "localhost" {
			return bad("mqtt.embedded.users", "the embedded broker listens on %s, beyond loopback: configure users", host)
		}
		for i, u := range c.MQTT.Embedded.Users {
			if u.Username == "" || u.Password == "" {
				return bad(fmt.Sprintf("mqtt.embedded.users[%d]", i), "username and password are required")
			}
		}
	} else if u, err := url.Parse(c.MQTT.Broker); err != nil || !slices.Contains([]string{"tcp", "mqtt", "ssl", "tls", "mqtts", "tcps"}, u.Scheme) || u.Host == "" {
		return bad("mqtt.broker", "want a URL such as tcp://host:1883 or tls://host:8883, got %q", c.MQTT.Broker)
	}
	if c.MQTT.ClientID == "" {
		return bad("mqtt.client_id", "must not be empty: a fixed id keeps the broker session across restarts")
	}
	if len(c.MQTT.Topics) == 0 {
		return bad("mqtt.topics", "at least one topic is needed")
	}
	names := map[string]bool{}
	for i, t := range c.MQTT.Topics {
		key := fmt.Sprintf("mqtt.topics[%d]", i)
		switch {
		case t.Name == "" || strings.ContainsAny(t.Name, "/+#"):
			return bad(key+".name", "want a plain name (used in hv/deadletter/<name>), got %q", t.Name)
		case names[t.Name]:
			return bad(key+".name", "%q is used twice", t.Name)
		case t.Topic == "" || strings.Contains(t.Topic, "#") && !strings.HasSuffix(t.Topic, "#"):
			return bad(key+".topic", "not a valid topic filter: %q", t.Topic)
		}
		if _, err := decode.Lookup(t.Format); err != nil {
			return bad(key+".format", "unknown format %q (known: %s)", t.Format, strings.Join(decode.Formats(), ", "))
		}
		names[t.Name] = true
	}
	switch c.Storage.Driver {
	case "embedded":
		if c.Storage.Path == "" {
			return bad("storage.path", "must not be empty with the embedded store")
		}
	case "influxdb":
		if u, err := url.Parse(c.Storage.InfluxDB.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("storage.influxdb.url", "want http(s)://host:port, got %q", c.Storage.InfluxDB.URL)
		}
		if c.Storage.InfluxDB.Bucket == "" {
			return bad("storage.influxdb.bucket", "must not be empty (InfluxDB 1.8: db/rp)")
		}
		if c.Storage.InfluxDB.Timeout <= 0 {
			return bad("storage.influxdb.timeout", "must be positive")
		}
		if c.Storage.InfluxDB.BatchSize <= 0 {
			return bad("storage.influxdb.batch_size", "must be positive")
		}
	default:
		return bad("storage.driver", "want embedded or influxdb, got %q", c.Storage.Driver)
	}
	if c.Storage.Retention < 24*time.Hour {
		return bad("storage.retention", "must be at least 24h, got %s", c.Storage.Retention)
	}
	if c.Spool.MaxBytes < 1<<20 {
		return bad("spool.max_bytes", "must be at least 1 MiB, got %d", c.Spool.MaxBytes)
	}
	ing := c.Ingest
	switch {
	case ing.BatchSize <= 0:
		return bad("ingest.batch_size", "must be positive")
	case ing.FlushInterval <= 0:
		return bad("ingest.flush_interval", "must be positive")
	case ing.Writers <= 0 || ing.Writers > 64:
		return bad("ingest.writers", "must be between 1 and 64")
	case ing.QueueSize <= 0:
		return bad("ingest.queue_size", "must be positive")
	case ing.MaxPayload < 1024:
		return bad("ingest.max_payload", "must be at least 1024 bytes")
	case ing.MaxFuture < 0:
		return bad("ingest.max_future", "must not be negative")
	case ing.WriteTimeout <= 0:
		return bad("ingest.write_timeout", "must be positive")
	}
	if p := c.Auth.AdminPassword; p != "" {
		if err := users.CheckPasswordPolicy(p); err != nil {
			return bad("auth.admin_password", "%v", err)
		}
	}
	if c.Auth.SessionIdle < time.Minute {
		return bad("auth.session_idle", "must be at least 1m, got %s", c.Auth.SessionIdle)
	}
	if c.Auth.SessionMax < c.Auth.SessionIdle || c.Auth.SessionMax > 90*24*time.Hour {
		return bad("auth.session_max", "must be from auth.session_idle (%s) to 2160h (90 days), got %s", c.Auth.SessionIdle, c.Auth.SessionMax)
	}
	for i, t := range c.Auth.Tokens {
		key := fmt.Sprintf("auth.tokens[%d]", i)
		if t.Name == "" {
			return bad(key+".name", "must not be empty")
		}
		if len(t.SHA256) != 64 || strings.Trim(strings.ToLower(t.SHA256), "0123456789abcdef") != "" {
			return bad(key+".sha256", "want the 64-hex-digit SHA-256 of the token (hyperviseur token hash)")
		}
		if !slices.Contains([]string{"admin", "technicien", "pilote", "lecteur"}, t.Role) {
			return bad(key+".role", "want admin, technicien, pilote or lecteur, got %q", t.Role)
		}
		if t.Role == "pilote" && len(t.EPCIs) == 0 {
			return bad(key+".epcis", "a pilote needs at least one EPCI code")
		}
	}
	if c.Rules.Interval < time.Second {
		return bad("rules.interval", "must be at least 1s, got %s", c.Rules.Interval)
	}
	if c.Reporting.Enabled {
		if err := c.Reporting.Config.Validate(); err != nil {
			return err
		}
	}
	switch l := c.Lighting; {
	case l.AckTimeout < time.Second || l.AckTimeout > 10*time.Minute:
		return bad("lighting.ack_timeout", "must be 1s to 10m, got %s", l.AckTimeout)
	case l.MaxAttempts < 1 || l.MaxAttempts > 20:
		return bad("lighting.max_attempts", "must be 1 to 20, got %d", l.MaxAttempts)
	case l.OfflineAfter < time.Minute:
		return bad("lighting.offline_after", "must be at least 1m, got %s", l.OfflineAfter)
	case l.Nights < 1 || l.Nights > 7:
		return bad("lighting.nights", "must be 1 to 7, got %d", l.Nights)
	}
	checkRoute := func(key string, r RouteConfig) error {
		for _, s := range r.Severities {
			if !slices.Contains([]string{"critical", "warning", "info"}, s) {
				return bad(key+".severities", "want critical, warning or info, got %q", s)
			}
		}
		return nil
	}
	for i, w := range c.Notify.Webhooks {
		key := fmt.Sprintf("notify.webhooks[%d]", i)
		if w.Name == "" {
			return bad(key+".name", "must not be empty")
		}
		if u, err := url.Parse(w.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(key+".url", "want http(s)://host/path, got %q", w.URL)
		}
		if err := checkRoute(key, w.RouteConfig); err != nil {
			return err
		}
	}
	if e := c.Notify.Email; e.Addr != "" {
		if _, _, err := net.SplitHostPort(e.Addr); err != nil {
			return bad("notify.email.addr", "want host:port, got %q", e.Addr)
		}
		if e.From == "" || len(e.To) == 0 {
			return bad("notify.email.to", "from and to are required with notify.email.addr")
		}
		if e.Every < time.Minute {
			return bad("notify.email.every", "must be at least 1m, got %s", e.Every)
		}
		if err := checkRoute("notify.email", e.RouteConfig); err != nil {
			return err
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		return bad("log.level", "want debug, info, warn or error, got %q", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		return bad("log.format", "want text or json, got %q", c.Log.Format)
	}
	return nil
}
