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
	// One SUBSCRIBE for every filter: mochi mixes the packet ids of the client's SUBSCRIBEs with its own
	// publications, so back-to-back SUBSCRIBEs can be refused (0x91) without paho reporting an error.
	filters := map[string]byte{AckTopics: 1, ChirpStackAckTopics: 1, TTSAckTopics: 1, TTSNackTopics: 1, TTSFailedTopics: 1}
	t := c.SubscribeMultiple(filters, func(cl paho.Client, m paho.Message) {
		if _, kind, ok := DeviceOf(m.Topic()); ok && kind == "ack" {
			ack(cl, m)
			return
		}
		dl(cl, m)
	})
	go func() {
		if !t.WaitTimeout(30*time.Second) || t.Error() != nil {
			log.Error("lighting acks not subscribed", "err", t.Error())
			return
		}
		if st, ok := t.(*paho.SubscribeToken); ok {
			for topic, code := range st.Result() {
				if code >= 0x80 {
					log.Error("lighting acks not subscribed: refused by the broker", "topic", topic, "code", code)
				}
			}
		}
	}()
}
