package lighting

import (
	"context"
	"errors"
	"log/slog"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// MQTTPublisher publishes at QoS 1 through a paho client and waits for the broker's PUBACK.
type MQTTPublisher struct {
	Client  paho.Client
	Timeout time.Duration // default 30s
}

var _ Publisher = MQTTPublisher{}

// Publish sends payload and returns once the broker has it.
func (p MQTTPublisher) Publish(ctx context.Context, topic string, retained bool, payload []byte) error {
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	t := p.Client.Publish(topic, 1, retained, payload)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return errors.New("publish: no PUBACK from the broker")
	}
}

// Subscribe subscribes c to the controllers' acks and the LoRaWAN network servers' downlink events and
// hands them to s. Call it from the client's OnConnect handler, so it is done again after a reconnection.
func Subscribe(c paho.Client, s *Service, log *slog.Logger) {
	ack := func(_ paho.Client, m paho.Message) { s.HandleAck(m.Topic(), m.Payload()) }
	dl := func(_ paho.Client, m paho.Message) { s.HandleDownlinkAck(m.Topic(), m.Payload()) }
	filters := map[string]paho.MessageHandler{AckTopics: ack, ChirpStackAckTopics: dl, TTSAckTopics: dl, TTSNackTopics: dl, TTSFailedTopics: dl}
	for topic, h := range filters {
		t := c.Subscribe(topic, 1, h)
		go func() {
			if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
				log.Error("lighting acks not subscribed", "topic", topic, "err", t.Error())
			}
		}()
	}
}
