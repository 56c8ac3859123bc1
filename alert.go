package hyperviseur

import (
	"context"
	"time"
)

// Severity of an alert.
type Severity string

// Severities, from the most urgent.
const (
	SeverityCritical Severity = "critical"
	SeverityWarning  Severity = "warning"
	SeverityInfo     Severity = "info"
)

// AlertState is where an alert stands in its lifecycle (Prometheus-style: pending → firing → resolved).
type AlertState string

// Alert states.
const (
	AlertPending  AlertState = "pending"
	AlertFiring   AlertState = "firing"
	AlertResolved AlertState = "resolved"
)

// Alert is one occurrence of a rule's condition, keyed by the fingerprint of rule + labels.
type Alert struct {
	Fingerprint string            `json:"fingerprint"`
	Rule        string            `json:"rule"`
	Labels      map[string]string `json:"labels"`
	Severity    Severity          `json:"severity"`
	State       AlertState        `json:"state"`
	Summary     string            `json:"summary"`
	Value       float64           `json:"value"`
	ActiveAt    time.Time         `json:"active_at"`
	FiredAt     time.Time         `json:"fired_at,omitzero"`
	ResolvedAt  time.Time         `json:"resolved_at,omitzero"`
}

// Notifier delivers alerts (websocket hub, webhook, e-mail, MQTT).
type Notifier interface {
	Notify(ctx context.Context, alerts []Alert) error
}
