package simulators

import (
	"context"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// PublishConfig says where the fleet publishes and how fast its clock runs.
type PublishConfig struct {
	Broker   string
	ClientID string
	// Speed above 1 replays the last CatchUp of the fleet's life accelerated, then carries on in real time:
	// timestamps stay consistent and never lie in the future, which ingest would rightly refuse.
	Speed   float64
	CatchUp time.Duration
	// Faults are injected into the runner when publishing starts (ParseFaults reads them from --fault
	// flags). One the runner refuses is logged and skipped: call Runner.Inject first to fail before starting.
	Faults []Fault
}

// Start is where the runner's clock must start for cfg: now, or CatchUp ago when accelerated.
func (cfg PublishConfig) Start(now time.Time) time.Time {
	if cfg.Speed > 1 {
		return now.Add(-cfg.CatchUp)
	}
	return now
}

// Publish runs the fleet until ctx ends, publishing every due message with QoS 1.
//
// The fleet's lighting controllers listen as real ones do: Publish subscribes (QoS 1) to hv/+/program and
// hv/+/cmd on every connection, so a reconnect resubscribes and the broker redelivers the retained programs
// (how a controller back from an outage gets its program), hands what is addressed to a fleet controller
// that listens on MQTT to the Runner (ApplyProgram, ApplyCommand) at the fleet's current simulated time,
// and publishes each program's and command's ack on hv/<device>/ack (QoS 1). LoRaWAN controllers ignore
// hv/<device>/…: Publish also subscribes, playing their network servers, to the downlinks of the fleet's
// ChirpStack and The Things Stack applications, hands them to the Runner (HandleDownlink) and publishes the
// servers' acks. Messages for other devices are left alone.
func Publish(ctx context.Context, cfg PublishConfig, r *Runner, log *slog.Logger) {
	realStart := time.Now()
	virtualStart := cfg.Start(realStart)
	speed := max(cfg.Speed, 1)
	clock := func() time.Time { // the fleet's simulated time
		now := time.Now()
		virtual := virtualStart.Add(time.Duration(float64(now.Sub(realStart)) * speed))
		if virtual.After(now) {
			virtual = now // caught up: real time from here on
		}
		return virtual
	}
	opts := paho.NewClientOptions().AddBroker(cfg.Broker).SetClientID(cfg.ClientID).
		SetCleanSession(true).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(time.Second)
	opts.SetOnConnectHandler(func(c paho.Client) { subscribeControllers(c, r, clock, log) })
	c := paho.NewClient(opts)
	for _, f := range cfg.Faults {
		if err := r.Inject(f); err != nil {
			log.Error("fault not injected", "fault", f.String(), "err", err)
			continue
		}
		log.Info("fault injected", "fault", f.String())
	}
	c.Connect().Wait()
	defer c.Disconnect(250)
	log.Info("simulated fleet publishing", "devices", r.Devices(), "speed", speed, "from", virtualStart.Format(time.RFC3339))
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	window := make(chan paho.Token, 1000) // publishes in flight, bounded
	sent := 0
	caughtUp := speed == 1
	for {
		now := clock()
		if !caughtUp && !now.Before(time.Now().Add(-time.Second)) {
			caughtUp = true
			log.Info("simulated fleet caught up: real time from here on", "messages", sent)
		}
		for _, m := range r.Due(now) {
			if len(window) == cap(window) {
				if t := <-window; !t.WaitTimeout(10*time.Second) || t.Error() != nil {
					log.Warn("fleet publish not acknowledged", "err", t.Error())
				}
			}
			window <- c.Publish(m.Topic, 1, false, m.Payload)
			sent++
		}
		select {
		case <-ctx.Done():
			log.Info("simulated fleet stopped", "messages", sent)
			return
		case <-tick.C:
		}
	}
}
