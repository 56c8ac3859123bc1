// Package notify delivers alerts: a signed webhook, an MQTT topic per severity, routing by scope and
// severity, and a bounded queue so a slow receiver never holds up the rules engine. Each is a
// hyperviseur.Notifier.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// Headers of a webhook delivery. The signature is HMAC-SHA256, keyed with the shared secret, of
// "<timestamp>.<body>": a receiver recomputes it and refuses an old timestamp, so a captured delivery
// cannot be replayed (the scheme Stripe and GitHub use).
const (
	HeaderSignature = "X-Hyperviseur-Signature" // "sha256=<hex>"
	HeaderTimestamp = "X-Hyperviseur-Timestamp" // Unix seconds
)

// WebhookConfig says where and how to deliver.
type WebhookConfig struct {
	URL     string
	Secret  string        // HMAC key; empty: deliveries are not signed
	Timeout time.Duration // per attempt; default 10 s
	// Attempts bounds the tries of one delivery (default 5); between tries the wait doubles from Backoff
	// (default 1 s), or follows the receiver's Retry-After.
	Attempts int
	Backoff  time.Duration
}

// Webhook posts alerts as JSON. Network errors, 5xx and 429 answers are retried; other 4xx answers are not
// (the receiver refused this delivery and will refuse it again).
type Webhook struct {
	cfg    WebhookConfig
	client *http.Client
	log    *slog.Logger
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
}

var _ hv.Notifier = (*Webhook)(nil)

// NewWebhook checks the configuration and returns the notifier.
func NewWebhook(cfg WebhookConfig, log *slog.Logger) (*Webhook, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("webhook: %w: no url", hv.ErrInvalid)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhook{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout}, log: log, now: time.Now, sleep: sleepCtx}, nil
}

// Payload is the JSON body of a delivery.
type Payload struct {
	Version string     `json:"version"`
	Alerts  []hv.Alert `json:"alerts"`
}

// Notify delivers alerts in one POST, retrying as configured.
func (w *Webhook) Notify(ctx context.Context, alerts []hv.Alert) error {
	if len(alerts) == 0 {
		return nil
	}
	body, err := json.Marshal(Payload{Version: "1", Alerts: alerts})
	if err != nil {
		return fmt.Errorf("webhook: encode: %w", err)
	}
	wait := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		retryAfter, err := w.post(ctx, body)
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) || attempt == w.cfg.Attempts || ctx.Err() != nil {
			return fmt.Errorf("webhook %s: %d alerts not delivered after %d attempts: %w", w.cfg.URL, len(alerts), attempt, err)
		}
		if retryAfter > 0 {
			wait = retryAfter
		}
		w.log.Warn("webhook delivery failed, retrying", "url", w.cfg.URL, "attempt", attempt, "retry_in", wait, "err", err)
		if err := w.sleep(ctx, wait); err != nil {
			return fmt.Errorf("webhook %s: %w", w.cfg.URL, err)
		}
		wait *= 2
	}
}

type permanentError struct{ status int }

func (e permanentError) Error() string { return fmt.Sprintf("refused with HTTP %d", e.status) }

// post makes one attempt; it returns the receiver's Retry-After when it gave one.
func (w *Webhook) post(ctx context.Context, body []byte) (time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, permanentError{0}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hyperviseur")
	if w.cfg.Secret != "" {
		ts := strconv.FormatInt(w.now().Unix(), 10)
		req.Header.Set(HeaderTimestamp, ts)
		req.Header.Set(HeaderSignature, Sign([]byte(w.cfg.Secret), ts, body))
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return 0, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		var after time.Duration
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			after = time.Duration(min(s, 3600)) * time.Second
		}
		return after, fmt.Errorf("HTTP %d", resp.StatusCode)
	default:
		return 0, permanentError{resp.StatusCode}
	}
}

// Sign is the signature header value of a delivery: "sha256=" and the hex HMAC-SHA256 of
// "<timestamp>.<body>" keyed with secret.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a delivery's signature in constant time, and that its timestamp is within maxAge of now: what
// a receiver does.
func Verify(secret []byte, timestamp, signature string, body []byte, now time.Time, maxAge time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("webhook signature: bad timestamp %q", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > maxAge || d < -maxAge {
		return fmt.Errorf("webhook signature: timestamp %s off by %s", timestamp, d.Round(time.Second))
	}
	if !hmac.Equal([]byte(Sign(secret, timestamp, body)), []byte(signature)) {
		return errors.New("webhook signature: mismatch")
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
