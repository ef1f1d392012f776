// Package latency puts a round trip between a benchmark's contenders and
// the API server: a TCP proxy on 127.0.0.1 that holds every chunk of data
// for half of it in each direction, so that the loopback cluster answers
// like one some milliseconds away (a managed control plane, a cluster in
// another region).
package latency

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// Proxy forwards TCP connections from a loopback port to the API server,
// holding every chunk of data for half a round trip in each direction.
// Both contenders of a benchmark go through it; the benchmark's own
// bookkeeping (namespaces, metrics, clean-up) does not.
type Proxy struct {
	ln     net.Listener
	target string
	oneWay time.Duration
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
}

// Start listens on a free loopback port and forwards every connection to
// target (host:port), adding rtt to each round trip.
func Start(target string, rtt time.Duration) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("latency proxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, oneWay: rtt / 2, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// StartFor starts a proxy to the API server cfg names and returns it with
// a copy of cfg that goes through it.
func StartFor(cfg *rest.Config, rtt time.Duration) (*Proxy, *rest.Config, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("latency proxy: API server URL: %w", err)
	}
	p, err := Start(u.Host, rtt)
	if err != nil {
		return nil, nil, err
	}
	c, err := p.Proxied(cfg)
	if err != nil {
		_ = p.Close()
		return nil, nil, err
	}
	return p, c, nil
}

// Proxied returns a copy of cfg that reaches the API server through p.
func (p *Proxy) Proxied(cfg *rest.Config) (*rest.Config, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("latency proxy: API server URL: %w", err)
	}
	c := rest.CopyConfig(cfg)
	// The serving certificate names 127.0.0.1, which the proxy shares.
	u.Host = p.ln.Addr().String()
	c.Host = u.String()
	return c, nil
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.track(in, out)
		p.wg.Add(2)
		go p.pipe(out, in)
		go p.pipe(in, out)
	}
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

// chunk is data read at one moment.
type chunk struct {
	data []byte
	at   time.Time
}

// pipe copies src to dst, each chunk oneWay after it was read; order is
// kept, and a slow chunk does not delay the reading of the next.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	queue := make(chan chunk, 4096)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{buf[:n], time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.at.Add(p.oneWay)))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	// Pass the end of the stream on, then let the reader above end.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	for range queue {
	}
}

// Close stops accepting, cuts every connection and waits for the copies.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

var _ io.Closer = (*Proxy)(nil)
