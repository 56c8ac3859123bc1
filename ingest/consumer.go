package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// ConsumerConfig is the MQTT connection.
type ConsumerConfig struct {
	Broker   string // tcp://host:port
	ClientID string // fixed: the broker keeps the session (and queues for it) across restarts
	Username string
	Password string
}

// Consumer subscribes to the sources with a persistent QoS 1 session and hands every message to the pipeline
// without acknowledging it: the pipeline acknowledges once the readings are durable.
type Consumer struct {
	cfg       ConsumerConfig
	sources   []*Source
	pipeline  *Pipeline
	metrics   *Metrics
	log       *slog.Logger
	client    paho.Client
	connected atomic.Bool
	ctx       context.Context // ends at Stop, so a handler blocked on a full queue lets go
	cancel    context.CancelFunc
	jobs      chan job
	workers   int
}

// job is one message waiting for a worker.
type job struct {
	src *Source
	msg paho.Message
}

// NewConsumer prepares the MQTT client; Start connects it.
func NewConsumer(cfg ConsumerConfig, sources []*Source, p *Pipeline, m *Metrics, log *slog.Logger) *Consumer {
	// paho runs each message on a new goroutine, whose stack then grows inside the decoders: profiled, that
	// growth cost an eighth of the service's CPU. A fixed pool of long-lived workers, whose stacks have grown
	// once, does the work instead; the bounded queue before them keeps back-pressure on the broker.
	workers := max(4, 2*runtime.GOMAXPROCS(0))
	c := &Consumer{cfg: cfg, sources: sources, pipeline: p, metrics: m, log: log,
		jobs: make(chan job, 64*workers), workers: workers}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	opts := paho.NewClientOptions().
		AddBroker(cfg.Broker).
		SetClientID(cfg.ClientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetCustomOpenConnectionFn(openBufferedConn).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(10 * time.Second).
		// Messages of the resumed session may arrive before Subscribe returns: the default handler routes them.
		SetDefaultPublishHandler(c.dispatch).
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.setConnected(false)
			c.log.Warn("mqtt connection lost; reconnecting", "broker", cfg.Broker, "err", err)
		})
	c.client = paho.NewClient(opts)
	return c
}

// Start connects, retrying in the background until the broker answers; it returns at once.
func (c *Consumer) Start() {
	for range c.workers {
		go c.work()
	}
	c.client.Connect() // with ConnectRetry the token completes only once connected; onConnect subscribes.
}

func (c *Consumer) work() {
	for {
		select {
		case j := <-c.jobs:
			if err := c.pipeline.Handle(c.ctx, j.src, j.msg.Topic(), j.msg.Payload(), j.msg.Ack); err != nil {
				c.log.Debug("message left unacknowledged at shutdown", "topic", j.msg.Topic())
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// Connected reports whether the MQTT connection is up and subscribed.
func (c *Consumer) Connected() bool { return c.connected.Load() }

func (c *Consumer) setConnected(up bool) {
	c.connected.Store(up)
	if up {
		c.metrics.Connected.Set(1)
	} else {
		c.metrics.Connected.Set(0)
	}
}

// onConnect (re)subscribes every source: after a broker restart without persistence the session is gone.
func (c *Consumer) onConnect(cl paho.Client) {
	filters := make(map[string]byte, len(c.sources))
	for _, s := range c.sources {
		filters[s.Topic] = 1
	}
	tok := cl.SubscribeMultiple(filters, c.dispatch)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		c.log.Error("mqtt subscribe failed; dropping the connection to retry", "err", tok.Error())
		cl.Disconnect(0)
		return
	}
	c.setConnected(true)
	c.log.Info("mqtt connected and subscribed", "broker", c.cfg.Broker, "topics", len(filters))
}

func (c *Consumer) dispatch(_ paho.Client, m paho.Message) {
	src := c.match(m.Topic())
	if src == nil {
		// Not ours (a retained program echo, say): acknowledge so the broker does not resend it forever.
		m.Ack()
		return
	}
	select {
	case c.jobs <- job{src, m}:
	case <-c.ctx.Done(): // shutting down: left unacknowledged, the broker redelivers it
	}
}

func (c *Consumer) match(topic string) *Source {
	for _, s := range c.sources {
		if TopicMatch(s.Topic, topic) {
			return s
		}
	}
	return nil
}

// Publish sends one QoS 1 message and waits for the broker's acknowledgement.
func (c *Consumer) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	tok := c.client.Publish(topic, 1, retained, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("publish %s: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("publish %s: %w", topic, ctx.Err())
	case <-time.After(10 * time.Second):
		return fmt.Errorf("publish %s: %w", topic, errors.New("no acknowledgement from the broker within 10s"))
	}
}

// DeadLetter publishes a rejected message to hv/deadletter/<source>.
func (c *Consumer) DeadLetter(ctx context.Context, source string, msg []byte) error {
	return c.Publish(ctx, "hv/deadletter/"+source, msg, false)
}

// StopIntake makes handlers blocked on a full writer queue give up; their messages stay unacknowledged.
func (c *Consumer) StopIntake() { c.cancel() }

// Disconnect closes the connection, letting in-flight acknowledgements go out first.
func (c *Consumer) Disconnect() {
	c.client.Disconnect(500)
	c.setConnected(false)
}

// TopicMatch reports whether an MQTT topic matches a filter with + and # wildcards; a shared-subscription
// prefix ($share/<group>/) on the filter is ignored.
func TopicMatch(filter, topic string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			filter = rest[i+1:]
		}
	}
	for {
		fi := strings.IndexByte(filter, '/')
		ti := strings.IndexByte(topic, '/')
		fseg, tseg := filter, topic
		if fi >= 0 {
			fseg = filter[:fi]
		}
		if ti >= 0 {
			tseg = topic[:ti]
		}
		switch {
		case fseg == "#":
			return true
		case fseg != "+" && fseg != tseg:
			return false
		}
		if fi < 0 || ti < 0 {
			// Both must end together; "a/#" also matches "a".
			return fi < 0 && ti < 0 || (ti < 0 && filter[fi+1:] == "#")
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
	}
}
