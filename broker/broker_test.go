package broker

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/useda02/hyperviseur/internal/testenv"
)

func connect(addr, user, pass string) error {
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("t-%s-%d", user, time.Now().UnixNano())).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(2 * time.Second))
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return fmt.Errorf("connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return tok.Error()
}

func TestBrokerAuth(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b, err := Start(Config{Listen: addr, Users: []User{{Username: "ingest", Password: "s3cret"}}}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := connect(addr, "ingest", "s3cret"); err != nil {
		t.Errorf("right credentials refused: %v", err)
	}
	for _, c := range [][2]string{{"ingest", "wrong"}, {"", ""}, {"other", "s3cret"}} {
		if err := connect(addr, c[0], c[1]); err == nil {
			t.Errorf("credentials %q/%q accepted", c[0], c[1])
		}
	}

	open := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b2, err := Start(Config{Listen: open}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	if err := connect(open, "", ""); err != nil {
		t.Errorf("anonymous refused by a broker with no users: %v", err)
	}
}
