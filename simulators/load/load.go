// Package load is the load generator behind `hyperviseur bench`: N synthetic electricity meters publishing
// flat JSON with QoS 1 over a few MQTT connections, at a target total rate or as fast as the broker
// acknowledges; the registry those meters need; and a reader of the service's /metrics that turns its
// counters and its lag histogram into throughput, publish→store latency, CPU per reading, memory and loss.
//
// Each message carries the publish instant as its timestamp, so the service's
// hyperviseur_ingest_lag_seconds histogram measures publish→store. Publisher and service must share a clock
// (same machine, or NTP-synchronised hosts).
package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// DevicePrefix starts every synthetic device id: bench-000001, bench-000002…
const DevicePrefix = "bench-"

// MaxDevices keeps ids at six digits.
const MaxDevices = 999_999

// ReadingsPerMessage is what one message carries: an energy index and a power.
const ReadingsPerMessage = 2

// DeviceID is the id of device i, counted from 0: DeviceID(0) = "bench-000001".
func DeviceID(i int) string { return fmt.Sprintf("%s%06d", DevicePrefix, i+1) }

// indexEpoch is when every synthetic index was at zero. An index that is a function of the timestamp always
// increases, across runs too, and never by more than the device's power allows: the service sees valid
// meters, with no reset or jump flagged, whatever it remembers from an earlier run.
var indexEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()

// NominalW is device i's steady consumption, 300 W to 4.8 kW, scattered so neighbours differ.
func NominalW(i int) float64 { return 300 + float64(uint32(i)*2654435761%4500) }

// MaxPowerW is what the registry declares: twice the nominal power, so the index never looks like a jump.
func MaxPowerW(i int) float64 { return 2 * NominalW(i) }

// AppendPayload appends device i's flat JSON message for time ts (Unix ms):
// {"ts":…,"energy_kwh":…,"power_w":…}. The same device and ts always give the same bytes, so a device that
// publishes twice within a millisecond sends a true duplicate, which the store keeps once.
func AppendPayload(dst []byte, i int, ts int64) []byte {
	p := NominalW(i)
	kwh := p / 1000 * float64(ts-indexEpoch) / 3.6e6
	power := p * (0.9 + 0.2*float64(ts%1000)/1000)
	dst = append(dst, `{"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"energy_kwh":`...)
	dst = strconv.AppendFloat(dst, kwh, 'f', 6, 64)
	dst = append(dst, `,"power_w":`...)
	dst = strconv.AppendFloat(dst, power, 'f', 1, 64)
	return append(dst, '}')
}

// Config is one run of the generator.
type Config struct {
	Broker      string // tcp://host:port
	Username    string
	Password    string
	ClientID    string        // prefix of the connections' client ids; default "hv-bench"
	Devices     int           // synthetic devices, bench-000001…
	Rate        float64       // total messages per second; 0: as fast as the broker acknowledges
	Messages    int           // total messages; 0: until Duration
	Duration    time.Duration // used when Messages is 0
	Connections int           // MQTT connections the devices are spread over; default 4
	InFlight    int           // unacknowledged publishes per connection; default 1000
}

func (c *Config) defaults() {
	if c.ClientID == "" {
		c.ClientID = "hv-bench"
	}
	if c.Connections <= 0 {
		c.Connections = 4
	}
	if c.InFlight <= 0 {
		c.InFlight = 1000
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Broker == "":
		return errors.New("load: broker is required")
	case c.Devices <= 0 || c.Devices > MaxDevices:
		return fmt.Errorf("load: devices: want 1 to %d, got %d", MaxDevices, c.Devices)
	case c.Rate < 0:
		return fmt.Errorf("load: rate: must not be negative, got %g", c.Rate)
	case c.Messages < 0:
		return fmt.Errorf("load: messages: must not be negative, got %d", c.Messages)
	case c.Messages == 0 && c.Duration <= 0:
		return errors.New("load: give a number of messages or a duration")
	case c.Connections > c.Devices:
		return fmt.Errorf("load: connections (%d) must not exceed devices (%d): a device keeps to one connection", c.Connections, c.Devices)
	case c.InFlight > 65535:
		return fmt.Errorf("load: in-flight window %d exceeds the 65535 MQTT packet ids of a connection", c.InFlight)
	}
	return nil
}

// Stats is what the publishing side saw.
type Stats struct {
	Published int64     // messages the broker acknowledged (PUBACK)
	Failed    int64     // publishes that got no PUBACK: not counted as published, maybe delivered anyway
	FirstErr  error     // the first failure, if any
	Start     time.Time // just before the first publish
	End       time.Time // the last PUBACK
}

// Run connects, publishes and returns once every publish is acknowledged or failed. Device i publishes on
// connection i mod Connections, always in timestamp order. With Messages set, message k (k < Messages) is
// device k mod Devices' message: every device publishes Messages/Devices times, ±1. With Duration, the run
// ends when it elapses or ctx ends.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return Stats{}, err
	}
	clients := make([]paho.Client, cfg.Connections)
	for c := range clients {
		opts := paho.NewClientOptions().AddBroker(cfg.Broker).
			SetClientID(fmt.Sprintf("%s-%d", cfg.ClientID, c)).
			SetUsername(cfg.Username).SetPassword(cfg.Password).
			SetCleanSession(true).SetAutoReconnect(false).
			SetKeepAlive(30 * time.Second).SetWriteTimeout(30 * time.Second).SetConnectTimeout(10 * time.Second)
		cl := paho.NewClient(opts)
		if tok := cl.Connect(); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			for _, prev := range clients[:c] {
				prev.Disconnect(100)
			}
			return Stats{}, fmt.Errorf("load: connect %s: %w", cfg.Broker, errOrTimeout(tok.Error()))
		}
		clients[c] = cl
	}
	defer func() {
		for _, cl := range clients {
			cl.Disconnect(250)
		}
	}()

	runCtx := ctx
	if cfg.Messages == 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	var limiter *Limiter
	if cfg.Rate > 0 {
		limiter = NewLimiter(cfg.Rate, int(cfg.Rate/100)) // at most 10 ms of messages at once
	}
	var (
		published, failed atomic.Int64
		errOnce           sync.Once
		firstErr          error
		wg                sync.WaitGroup
	)
	stats := Stats{Start: time.Now()}
	for c, cl := range clients {
		wg.Go(func() {
			p := &connPublisher{client: cl, conn: c, cfg: &cfg, limiter: limiter,
				slots: make(chan struct{}, cfg.InFlight), window: make(chan paho.Token, cfg.InFlight)}
			var reaper sync.WaitGroup
			reaper.Go(func() {
				// PUBACKs come back in order on one connection, so waiting for the oldest first costs nothing.
				for tok := range p.window {
					if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
						failed.Add(1)
						errOnce.Do(func() { firstErr = errOrTimeout(tok.Error()) })
					} else {
						published.Add(1)
					}
					<-p.slots
				}
			})
			p.run(runCtx)
			close(p.window)
			reaper.Wait()
		})
	}
	wg.Wait()
	stats.End = time.Now()
	stats.Published, stats.Failed, stats.FirstErr = published.Load(), failed.Load(), firstErr
	return stats, nil
}

func errOrTimeout(err error) error {
	if err == nil {
		return errors.New("no acknowledgement within the timeout")
	}
	return err
}

// connPublisher publishes the messages of the devices of one connection.
type connPublisher struct {
	client  paho.Client
	conn    int
	cfg     *Config
	limiter *Limiter
	slots   chan struct{}   // one per publish awaiting its PUBACK: the in-flight window
	window  chan paho.Token // those publishes, oldest first, for the reaper
}

// run publishes round after round over the connection's devices (conn, conn+C, conn+2C…): in round r, device
// i sends message r×Devices+i, skipped when that is beyond Messages.
func (p *connPublisher) run(ctx context.Context) {
	n, step := p.cfg.Devices, p.cfg.Connections
	topics := make([]string, 0, (n-p.conn+step-1)/step)
	for i := p.conn; i < n; i += step {
		topics = append(topics, "hv/"+DeviceID(i)+"/up")
	}
	for round := 0; ; round++ {
		for j, topic := range topics {
			i := p.conn + j*step
			if p.cfg.Messages > 0 && round*n+i >= p.cfg.Messages {
				return
			}
			if ctx.Err() != nil {
				return
			}
			if p.limiter != nil && p.limiter.Wait(ctx) != nil {
				return
			}
			select {
			case p.slots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			// The timestamp is taken last, once the rate limiter and the in-flight window let the message go,
			// so the service's lag histogram measures publish→store and not the wait for a slot.
			ts := (time.Now().UnixNano() + 500_000) / 1_000_000 // rounded to the nearest ms
			p.window <- p.client.Publish(topic, 1, false, AppendPayload(make([]byte, 0, 80), i, ts))
		}
	}
}
