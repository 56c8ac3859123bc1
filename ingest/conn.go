package ingest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// bufferedConn makes the MQTT connection cheap under load. paho reads each packet in several small reads
// and writes each 4-byte PUBACK with its own write(2) from one goroutine; profiled at 60 000 messages/s,
// those syscalls were a third of the service's CPU. Reads go through a buffer; writes are appended to a
// bounded buffer that one flusher goroutine writes out, so the acks that pile up while a write is in the
// kernel leave together in the next one. A write is never delayed: the flusher starts at once.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader

	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // waiting to be written
	spare   []byte // the previous write's buffer, reused
	writing bool   // the flusher is in a write
	err     error  // first write error; every later Write returns it
	closed  bool
	done    chan struct{} // the flusher has exited
}

// maxPendingWrite bounds what Write buffers before it waits for the flusher (a stalled connection must not
// grow memory without bound).
const maxPendingWrite = 1 << 20

func newBufferedConn(c net.Conn) *bufferedConn {
	bc := &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), done: make(chan struct{})}
	bc.cond = sync.NewCond(&bc.mu)
	go bc.flushLoop()
	return bc
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write queues p for the flusher. It reports the connection's first write error, if any, so the MQTT client
// notices a broken connection on its next packet (its reads fail at the same time anyway).
func (c *bufferedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.buf) >= maxPendingWrite && c.err == nil && !c.closed {
		c.cond.Wait()
	}
	if c.err != nil {
		return 0, c.err
	}
	if c.closed {
		return 0, net.ErrClosed
	}
	c.buf = append(c.buf, p...)
	c.cond.Broadcast()
	return len(p), nil
}

func (c *bufferedConn) flushLoop() {
	defer close(c.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for len(c.buf) == 0 && !c.closed {
			c.cond.Wait()
		}
		if len(c.buf) == 0 { // closed and drained
			return
		}
		out := c.buf
		c.buf, c.writing = c.spare[:0], true
		c.mu.Unlock()
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare, c.writing = out[:0], false
		c.cond.Broadcast()
		if err != nil {
			c.err = err
			c.buf = nil
			return
		}
	}
}

// Close flushes what is queued (the acks of a graceful shutdown, the DISCONNECT packet), waiting at most a
// second, then closes the connection.
func (c *bufferedConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.cond.Broadcast()
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	return c.Conn.Close()
}

// openBufferedConn is paho's connection opener for tcp/mqtt and tls/ssl/mqtts brokers, wrapped.
func openBufferedConn(uri *url.URL, opts paho.ClientOptions) (net.Conn, error) {
	d := &net.Dialer{Timeout: opts.ConnectTimeout}
	var (
		c   net.Conn
		err error
	)
	switch uri.Scheme {
	case "tcp", "mqtt":
		c, err = d.Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts", "tcps":
		c, err = tls.DialWithDialer(d, "tcp", uri.Host, opts.TLSConfig)
	default:
		return nil, fmt.Errorf("mqtt: %w: scheme %q (want tcp, mqtt, ssl, tls or mqtts)", errUnsupportedScheme, uri.Scheme)
	}
	if err != nil {
		return nil, err
	}
	return newBufferedConn(c), nil
}

var errUnsupportedScheme = errors.New("unsupported broker scheme")
