package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	hv "github.com/useda02/hyperviseur"
)

// AlertTopic is the MQTT topic an alert of a severity goes to: hv/alerts/<severity>.
func AlertTopic(s hv.Severity) string { return "hv/alerts/" + string(s) }

// publisher is the part of a paho client the MQTT notifier uses.
type publisher interface {
	Publish(topic string, qos byte, retained bool, payload any) paho.Token
}

// MQTT publishes each alert as JSON on hv/alerts/<severity>, QoS 1, not retained: an alert is an event, its
// current state is the API's.
type MQTT struct {
	client  publisher
	timeout time.Duration
}

var _ hv.Notifier = (*MQTT)(nil)

// NewMQTT wraps a connected paho client (the service's own); timeout bounds the wait for each PUBACK.
func NewMQTT(client paho.Client, timeout time.Duration) *MQTT {
	return &MQTT{client: client, timeout: max(timeout, time.Second)}
}

// Notify publishes the alerts and waits for the broker to take each.
func (m *MQTT) Notify(ctx context.Context, alerts []hv.Alert) error {
	tokens := make([]paho.Token, 0, len(alerts))
	for _, a := range alerts {
		b, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("mqtt notify: encode %s: %w", a.Fingerprint, err)
		}
		tokens = append(tokens, m.client.Publish(AlertTopic(a.Severity), 1, false, b))
	}
	deadline := time.Now().Add(m.timeout)
	for i, t := range tokens {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mqtt notify: %w", err)
		}
		if !t.WaitTimeout(time.Until(deadline)) {
			return fmt.Errorf("mqtt notify: alert %s not acknowledged by the broker within %s", alerts[i].Fingerprint, m.timeout)
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt notify: alert %s: %w", alerts[i].Fingerprint, err)
		}
	}
	return nil
}
