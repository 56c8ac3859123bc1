// Package broker runs the embedded MQTT broker (mochi-mqtt) used when no external broker is configured.
// Authentication and ACL are hooks on the broker, not patches to it.
package broker

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// User is an MQTT account of the embedded broker.
type User struct {
	Username string
	Password string
}

// Config of the embedded broker.
type Config struct {
	Listen string // host:port
	// Users, when set, are the only accounts allowed to connect; empty allows anonymous clients, which is
	// only sensible on a loopback listener (config validation refuses it elsewhere).
	Users []User
}

// Broker is a running embedded broker.
type Broker struct {
	srv *mqtt.Server
}

// Start listens and serves in the background.
func Start(cfg Config, log *slog.Logger) (*Broker, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	// QoS 1 ingest acknowledges after the store write, so many messages are in flight to one subscriber.
	caps.MaximumInflight = 65535
	caps.ReceiveMaximum = 65535
	caps.MaximumClientWritesPending = 64 * 1024
	srv := mqtt.New(&mqtt.Options{Capabilities: caps, Logger: log.With("component", "mqtt-broker"), InlineClient: false})
	if err := srv.AddHook(&authHook{users: cfg.Users}, nil); err != nil {
		return nil, fmt.Errorf("embedded broker: add auth hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Listen})); err != nil {
		return nil, fmt.Errorf("embedded broker: listen on %s: %w", cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("embedded broker: serve: %w", err)
	}
	return &Broker{srv: srv}, nil
}

// Close stops the broker and disconnects its clients.
func (b *Broker) Close() error { return b.srv.Close() }

// authHook checks usernames and passwords in constant time; with no users it lets everyone in.
type authHook struct {
	mqtt.HookBase
	users []User
}

func (h *authHook) ID() string { return "hyperviseur-auth" }

func (h *authHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqtt.OnConnectAuthenticate, mqtt.OnACLCheck}, []byte{b})
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if len(h.users) == 0 {
		return true
	}
	ok := false
	for _, u := range h.users {
		userOK := subtle.ConstantTimeCompare([]byte(u.Username), pk.Connect.Username) == 1
		passOK := subtle.ConstantTimeCompare([]byte(u.Password), pk.Connect.Password) == 1
		ok = ok || (userOK && passOK)
	}
	return ok
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool { return true }
