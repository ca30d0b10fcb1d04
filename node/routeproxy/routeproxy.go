// Package routeproxy stands TCP proxies between the servers of a cluster,
// so that a test or the benchmark can cut one server off from the others
// and heal the cut: what a SIGKILL or a partition looks like to them.
package routeproxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Proxies stand between the servers of a cluster: each server's routes
// dial the proxies (Routes), and the proxy of server i forwards to i's
// route listener. A route's dialer sends CONNECT first, with its server
// ID, so each proxied connection is known by both its ends, and Cut can
// isolate one server in both directions at once: what its SIGKILL or a
// partition looks like to the others (nats-server's Shutdown is no such
// loss: it first hands the server's RAFT leaderships over). Heal lets the
// routes open again. Plain routes only: a TLS route's CONNECT cannot be
// read.
type Proxies struct {
	backends []string       // the servers' route listeners
	ports    map[string]int // a server's route port → its proxy's
	lns      []net.Listener
	wg       sync.WaitGroup

	mu     sync.Mutex
	conns  map[*proxied]struct{}
	cut    int    // the index of the server cut off, -1 if none
	cutID  string // its server ID
	closed bool
}

// proxied is one route connection through a proxy: from the server with
// ID from (known once its CONNECT is read) to server to.
type proxied struct {
	to   int
	down net.Conn

	mu     sync.Mutex
	from   string
	back   net.Conn
	closed bool
}

// Start listens on a loopback port for each backend (a server's route
// listener, host:port) and returns the proxies; Addrs()[i] stands for
// backends[i].
func Start(backends []string) (*Proxies, error) {
	p := &Proxies{backends: backends, ports: map[string]int{}, conns: map[*proxied]struct{}{}, cut: -1}
	for i := range backends {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.Close()
			return nil, err
		}
		p.lns = append(p.lns, ln)
		_, port, err := net.SplitHostPort(backends[i])
		if err != nil {
			p.Close()
			return nil, err
		}
		p.ports[port] = ln.Addr().(*net.TCPAddr).Port
		p.wg.Add(1)
		go p.accept(ln, i)
	}
	return p, nil
}

// Addrs are the proxies' addresses, in the order of the backends.
func (p *Proxies) Addrs() []string {
	out := make([]string, len(p.lns))
	for i, ln := range p.lns {
		out[i] = ln.Addr().String()
	}
	return out
}

func (p *Proxies) accept(ln net.Listener, to int) {
	defer p.wg.Done()
	for {
		down, err := ln.Accept()
		if err != nil {
			return
		}
		c := &proxied{to: to, down: down}
		if !p.add(c) {
			c.close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

// serve reads the dialer's CONNECT, refuses a connection from or to the
// server cut off, and otherwise forwards both ways until either end closes.
func (p *Proxies) serve(c *proxied) {
	defer p.wg.Done()
	defer p.remove(c)
	defer c.close()
	_ = c.down.SetReadDeadline(time.Now().Add(10 * time.Second))
	down := bufio.NewReader(c.down)
	line, err := down.ReadBytes('\n')
	_ = c.down.SetReadDeadline(time.Time{})
	if err != nil {
		return
	}
	back, err := net.Dial("tcp", p.backends[c.to])
	if err != nil {
		return
	}
	if !c.connect(connectName(line), back) || !p.allowed(c) {
		return
	}
	if _, err := back.Write(line); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		p.forward(back, down)
		c.close()
		close(done)
	}()
	p.forward(c.down, bufio.NewReader(back))
	c.close()
	<-done
}

// forward copies src to dst, the first INFO with its port rewritten.
//
// A server tells the others its route port in its INFO; they gossip it
// as the address to reach it (the connection's IP and that port) and open
// routes there. Rewritten to the port of its proxy, every route goes
// through the proxies, and cut leaves no way round.
func (p *Proxies) forward(dst io.Writer, src *bufio.Reader) {
	for range 16 {
		line, err := src.ReadBytes('\n')
		if err != nil {
			return
		}
		info, ok := bytes.CutPrefix(line, []byte("INFO "))
		if ok {
			line = p.rewriteInfo(info)
		}
		if _, err := dst.Write(line); err != nil {
			return
		}
		if ok {
			break
		}
	}
	_, _ = io.Copy(dst, src)
}

// rewriteInfo returns the INFO line of the JSON js with its port, a
// server's route port, replaced by its proxy's.
func (p *Proxies) rewriteInfo(js []byte) []byte {
	var info map[string]any
	d := json.NewDecoder(bytes.NewReader(js))
	d.UseNumber()
	if err := d.Decode(&info); err == nil {
		if n, ok := info["port"].(json.Number); ok {
			if proxy, ok := p.ports[n.String()]; ok {
				info["port"] = proxy
				if b, err := json.Marshal(info); err == nil {
					js = append(b, '\r', '\n')
				}
			}
		}
	}
	return append([]byte("INFO "), js...)
}

// connect sets the dialer's ID and the backend connection, unless c is
// closed already.
func (c *proxied) connect(from string, back net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		back.Close()
		return false
	}
	c.from, c.back = from, back
	return true
}

func (c *proxied) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.down.Close()
	if c.back != nil {
		c.back.Close()
	}
}

func (c *proxied) dialer() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.from
}

// connectName is the server ID in a route's CONNECT line, "" if none.
func connectName(line []byte) string {
	var info struct {
		Name string `json:"name"`
	}
	if js, ok := bytes.CutPrefix(bytes.TrimSpace(line), []byte("CONNECT ")); ok {
		_ = json.Unmarshal(js, &info)
	}
	return info.Name
}

// add registers c unless the proxies are closed.
func (p *Proxies) add(c *proxied) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

// allowed reports whether c, its dialer known, may go on: not from or to
// the server cut off. A cut after this closes it.
func (p *Proxies) allowed(c *proxied) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.closed && !p.isCut(c)
}

func (p *Proxies) remove(c *proxied) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

func (p *Proxies) isCut(c *proxied) bool {
	return p.cut >= 0 && (c.to == p.cut || c.dialer() == p.cutID)
}

// Routes are the route URLs every server lists: the proxies'.
func (p *Proxies) Routes() []string {
	out := p.Addrs()
	for i := range out {
		out[i] = "nats-route://" + out[i]
	}
	return out
}

// Cut isolates server i, whose server ID is id, from the others: every
// route from or to it closes, and none opens again until Heal.
func (p *Proxies) Cut(i int, id string) error {
	if id == "" {
		return errors.New("cut off: no server ID")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.cutID = i, id
	for c := range p.conns {
		if p.isCut(c) {
			c.close()
		}
	}
	return nil
}

// close stops the proxies and waits for their goroutines.
// Heal ends the cut: the servers' routes open again as they retry them.
func (p *Proxies) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut, p.cutID = -1, ""
}

// Close stops the proxies and closes every connection through them.
func (p *Proxies) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.close()
	}
	p.mu.Unlock()
	for _, ln := range p.lns {
		ln.Close()
	}
	p.wg.Wait()
}
