package ingest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingConn records what reaches the kernel side and how many writes it took; slow makes each write
// take a while, as a busy socket does.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	got    bytes.Buffer
	writes atomic.Int32
	slow   time.Duration
	fail   error
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	time.Sleep(c.slow)
	if c.fail != nil {
		return 0, c.fail
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.Write(p)
}
func (c *countingConn) Close() error { return nil }

func TestBufferedConnKeepsOrderAndCoalesces(t *testing.T) {
	cc := &countingConn{slow: time.Millisecond}
	bc := newBufferedConn(cc)
	var want bytes.Buffer
	for i := range 2000 {
		p := []byte{0x40, 0x02, byte(i >> 8), byte(i)} // a PUBACK
		want.Write(p)
		if n, err := bc.Write(p); n != 4 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if err := bc.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cc.got.Bytes(), want.Bytes()) {
		t.Fatalf("bytes on the wire differ from bytes written (%d vs %d)", cc.got.Len(), want.Len())
	}
	if w := cc.writes.Load(); w >= 2000/10 {
		t.Errorf("%d syscalls for 2000 acks: writes were not coalesced", w)
	}
}

func TestBufferedConnReportsWriteError(t *testing.T) {
	boom := errors.New("broken pipe")
	bc := newBufferedConn(&countingConn{fail: boom})
	_, _ = bc.Write([]byte("x"))
	deadline := time.Now().Add(2 * time.Second)
	for {
		_, err := bc.Write([]byte("y"))
		if errors.Is(err, boom) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Write never reported the connection's write error (last: %v)", err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := bc.Write([]byte("z")); !errors.Is(err, boom) {
		t.Fatalf("after a write error, Write = %v, want the same error", err)
	}
}

func TestBufferedConnReadsThroughBuffer(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	bc := newBufferedConn(b)
	defer bc.Close()
	go func() { _, _ = a.Write([]byte("hello, broker")) }()
	got := make([]byte, 13)
	if _, err := io.ReadFull(bc, got); err != nil || string(got) != "hello, broker" {
		t.Fatalf("read %q, %v", got, err)
	}
	if _, err := bc.Write([]byte("ack")); err != nil {
		t.Fatal(err)
	}
	back := make([]byte, 3)
	if _, err := io.ReadFull(a, back); err != nil || string(back) != "ack" {
		t.Fatalf("peer read %q, %v", back, err)
	}
}
