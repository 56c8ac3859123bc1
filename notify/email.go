package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// EmailConfig says how to send the digest. The password is a secret: it is never logged.
type EmailConfig struct {
	Addr     string // SMTP server host:port
	From     string
	To       []string
	Username string // empty: no authentication (a local relay)
	Password string
	// Every is the digest period: alerts are batched and sent at most once per period (default 15 min), so
	// a storm of alerts makes one mail, not a hundred.
	Every time.Duration
	// MaxPending bounds the alerts kept for the next digest (default 1000); beyond, they are counted and the
	// digest says how many were left out.
	MaxPending int
}

// Email sends alerts as a periodic digest in French. net/smtp upgrades to STARTTLS when the server offers
// it, and refuses PLAIN authentication over an unencrypted connection to a remote host.
type Email struct {
	cfg  EmailConfig
	log  *slog.Logger
	send func(addr string, a smtp.Auth, from string, to []string, msg []byte) error
	now  func() time.Time

	mu      sync.Mutex
	pending []hv.Alert
	omitted int
}

var _ hv.Notifier = (*Email)(nil)

// NewEmail checks the configuration.
func NewEmail(cfg EmailConfig, log *slog.Logger) (*Email, error) {
	if _, _, err := net.SplitHostPort(cfg.Addr); err != nil {
		return nil, fmt.Errorf("email: %w: addr %q: want host:port", hv.ErrInvalid, cfg.Addr)
	}
	if cfg.From == "" || len(cfg.To) == 0 {
		return nil, fmt.Errorf("email: %w: from and to are required", hv.ErrInvalid)
	}
	if cfg.Every <= 0 {
		cfg.Every = 15 * time.Minute
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Email{cfg: cfg, log: log, send: smtp.SendMail, now: time.Now}, nil
}

// Notify adds alerts to the next digest.
func (e *Email) Notify(_ context.Context, alerts []hv.Alert) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	room := max(0, e.cfg.MaxPending-len(e.pending))
	take := min(room, len(alerts))
	e.pending = append(e.pending, alerts[:take]...)
	e.omitted += len(alerts) - take
	return nil
}

// Run sends a digest every period while there is something to send, and a last one when ctx ends.
func (e *Email) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := e.Flush(); err != nil {
				e.log.Error("alert digest not sent", "err", err)
			}
			return
		case <-t.C:
			if err := e.Flush(); err != nil {
				e.log.Error("alert digest not sent", "err", err)
			}
		}
	}
}

// Flush sends the pending alerts now, if any. On failure they stay for the next digest.
func (e *Email) Flush() error {
	e.mu.Lock()
	alerts, omitted := e.pending, e.omitted
	e.pending, e.omitted = nil, 0
	e.mu.Unlock()
	if len(alerts) == 0 && omitted == 0 {
		return nil
	}
	var auth smtp.Auth
	if e.cfg.Username != "" {
		host, _, _ := net.SplitHostPort(e.cfg.Addr)
		auth = smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, host)
	}
	if err := e.send(e.cfg.Addr, auth, e.cfg.From, e.cfg.To, e.message(alerts, omitted)); err != nil {
		e.mu.Lock()
		e.pending = append(alerts, e.pending...)
		if over := len(e.pending) - e.cfg.MaxPending; over > 0 {
			e.pending = e.pending[:e.cfg.MaxPending]
			omitted += over
		}
		e.omitted += omitted
		e.mu.Unlock()
		return fmt.Errorf("email digest to %s via %s: %w", strings.Join(e.cfg.To, ", "), e.cfg.Addr, err)
	}
	return nil
}

var severityFR = map[hv.Severity]string{hv.SeverityCritical: "critique", hv.SeverityWarning: "avertissement", hv.SeverityInfo: "information"}

var stateFR = map[hv.AlertState]string{hv.AlertPending: "en attente", hv.AlertFiring: "active", hv.AlertResolved: "résolue"}

// message is the RFC 5322 digest: a subject with the counts, one paragraph per alert.
func (e *Email) message(alerts []hv.Alert, omitted int) []byte {
	firing, critical := 0, 0
	for _, a := range alerts {
		if a.State == hv.AlertFiring {
			firing++
			if a.Severity == hv.SeverityCritical {
				critical++
			}
		}
	}
	subject := fmt.Sprintf("[hyperviseur] %d alerte(s) active(s), dont %d critique(s) ; %d résolue(s)",
		firing, critical, len(alerts)-firing)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		e.cfg.From, strings.Join(e.cfg.To, ", "), mime.QEncoding.Encode("utf-8", subject), e.now().Format(time.RFC1123Z))
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	paris, _ := time.LoadLocation("Europe/Paris")
	if paris == nil {
		paris = time.UTC
	}
	for _, a := range alerts {
		at := a.ActiveAt
		if a.State == hv.AlertResolved && !a.ResolvedAt.IsZero() {
			at = a.ResolvedAt
		}
		fmt.Fprintf(&b, "- [%s] %s : %s\r\n  règle %s, %s depuis le %s\r\n", severityFR[a.Severity], stateFR[a.State],
			a.Summary, a.Rule, labelsFR(a.Labels), at.In(paris).Format("02/01/2006 15:04"))
	}
	if omitted > 0 {
		fmt.Fprintf(&b, "\r\n%d autre(s) alerte(s) non détaillée(s) : voir le tableau de bord.\r\n", omitted)
	}
	return b.Bytes()
}

func labelsFR(l map[string]string) string {
	var parts []string
	for _, k := range []string{"device", "site", "commune", "epci"} {
		if v := l[k]; v != "" {
			parts = append(parts, map[string]string{"device": "équipement", "site": "site", "commune": "commune", "epci": "EPCI"}[k]+" "+v)
		}
	}
	return strings.Join(parts, ", ")
}
