package nodetest

import (
	"testing"

	"github.com/datamesh/datamesh/node/routeproxy"
)

// RouteProxies are routeproxy.Proxies for a test: between the servers of
// a test cluster, so that the test can partition it (Cut) and heal it.
type RouteProxies struct {
	*routeproxy.Proxies
	t testing.TB
}

// NewRouteProxies stands a proxy before each of the servers' route
// listeners (host:port) and closes them when the test ends.
func NewRouteProxies(t testing.TB, backends []string) *RouteProxies {
	t.Helper()
	p, err := routeproxy.Start(backends)
	if err != nil {
		t.Fatalf("route proxies: %v", err)
	}
	t.Cleanup(p.Close)
	return &RouteProxies{Proxies: p, t: t}
}

// Cut isolates server i, whose server ID is id, from the others until
// Heal; the test fails if it cannot.
func (p *RouteProxies) Cut(i int, id string) {
	p.t.Helper()
	if err := p.Proxies.Cut(i, id); err != nil {
		p.t.Fatal(err)
	}
}
