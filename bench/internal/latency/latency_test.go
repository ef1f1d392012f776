package latency

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// A request and its answer through the proxy take at least the round trip,
// and the data arrives whole and in order.
func TestProxyAddsRoundTrip(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer func() { _ = c.Close() }()
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return
		}
		_, _ = c.Write([]byte("echo " + line))
	}()
	const rtt = 40 * time.Millisecond
	p, err := Start(ln.Addr().String(), rtt)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	t0 := time.Now()
	if _, err := c.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d < rtt {
		t.Errorf("round trip took %v, want at least %v", d, rtt)
	}
	if got != "echo ping\n" {
		t.Errorf("got %q", got)
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}
