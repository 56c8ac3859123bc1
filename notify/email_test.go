package notify

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	hv "github.com/useda02/hyperviseur"
)

// smtpSink is a minimal SMTP server on loopback: enough of RFC 5321 for net/smtp to deliver to it. It
// keeps each message's envelope and data; failFirst makes the first transaction fail at DATA.
type smtpSink struct {
	ln        net.Listener
	mu        sync.Mutex
	msgs      []string
	rcpts     [][]string
	failFirst bool
}

func startSMTP(t *testing.T) *smtpSink {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { _, _ = c.Write([]byte(line + "\r\n")) }
	say("220 sink ESMTP")
	var rcpts []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			say("250 sink")
		case strings.HasPrefix(cmd, "MAIL FROM:"):
			rcpts = nil
			say("250 ok")
		case strings.HasPrefix(cmd, "RCPT TO:"):
			rcpts = append(rcpts, strings.Trim(strings.TrimSpace(line)[len("RCPT TO:"):], "<>"))
			say("250 ok")
		case cmd == "DATA":
			say("354 go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			s.mu.Lock()
			fail := s.failFirst
			s.failFirst = false
			if !fail {
				s.msgs = append(s.msgs, data.String())
				s.rcpts = append(s.rcpts, rcpts)
			}
			s.mu.Unlock()
			if fail {
				say("451 try again later")
			} else {
				say("250 queued")
			}
		case cmd == "QUIT":
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func (s *smtpSink) messages() ([]string, [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.msgs...), append([][]string(nil), s.rcpts...)
}

// TestEmailDigest: alerts between two digests make one mail to every recipient, in French, with the counts in
// the subject; a failed delivery keeps them for the next digest; overflow is counted, not lost silently.
func TestEmailDigest(t *testing.T) {
	sink := startSMTP(t)
	sink.failFirst = true
	e, err := NewEmail(EmailConfig{Addr: sink.ln.Addr().String(), From: "hyperviseur@syndicat.example.fr",
		To: []string{"astreinte@syndicat.example.fr", "pilote@laon.example.fr"}, MaxPending: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Flush(); err != nil {
		t.Fatalf("empty digest: %v", err)
	}
	c := alert("c", hv.SeverityCritical, "200043495")
	c.ActiveAt = time.Date(2027, 1, 12, 21, 5, 0, 0, time.UTC)
	r := alert("r", hv.SeverityWarning, "200043495")
	r.State, r.ResolvedAt, r.Summary = hv.AlertResolved, c.ActiveAt, "Éclairage allumé de jour"
	_ = e.Notify(context.Background(), []hv.Alert{c, r})
	if err := e.Flush(); err == nil {
		t.Fatal("a refused delivery reported as sent")
	}
	_ = e.Notify(context.Background(), []hv.Alert{alert("x", hv.SeverityInfo, ""), alert("y", hv.SeverityInfo, "")})
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	msgs, rcpts := sink.messages()
	if len(msgs) != 1 || len(rcpts[0]) != 2 {
		t.Fatalf("%d mails, recipients %v; want one to both", len(msgs), rcpts)
	}
	m := msgs[0]
	for _, want := range []string{
		"Subject: =?utf-8?q?", // the French subject, encoded
		"[critique] active : Fuite probable",
		"[avertissement] résolue : Éclairage allumé de jour",
		"le 12/01/2027 22:05", // Paris time
		"équipement d-c, EPCI 200043495",
		"1 autre(s) alerte(s) non détaillée(s)", // 4 alerts for 3 places
	} {
		if !strings.Contains(m, want) {
			t.Errorf("digest lacks %q:\n%s", want, m)
		}
	}
	if strings.Count(m, "\r\n- [") != 3 {
		t.Errorf("digest lists %d alerts, want 3:\n%s", strings.Count(m, "\r\n- ["), m)
	}
}
