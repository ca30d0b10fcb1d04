package bench

import (
	"context"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"

	"github.com/datamesh/datamesh/node"
	"github.com/datamesh/datamesh/node/protocol"
)

// AuthScenario compares pipelined appends by a service that signs in with
// a (bcrypt) password and has grants with the same appends by an
// anonymous client of a node without services.
const AuthScenario = "append-pipelined-auth"

const (
	authService = "bench-svc"
	authSecret  = "bench-secret"
	authRounds  = 3
)

// runAuth measures both clients alternately, authRounds times each, on two
// os-mode nodes, so that drift on a shared machine falls on both alike.
func runAuth(ctx context.Context, o Options) (Result, error) {
	plain, err := startEnv(ctx, o, node.DurabilityOS)
	if err != nil {
		return Result{}, err
	}
	defer plain.stop(true)
	secured, svc, err := startSecured(ctx, o)
	if err != nil {
		return Result{}, err
	}
	defer secured.stop(true)
	defer svc.Close()
	for _, e := range []*env{plain, secured} {
		if _, err := e.c.Apply([]byte(benchContract), false); err != nil {
			return Result{}, err
		}
	}
	total := o.Sizes.Pipelined / authRounds
	var plainSecs, authSecs float64
	for round := range authRounds {
		for _, run := range []struct {
			nc   *nats.Conn
			secs *float64
		}{{plain.nc, &plainSecs}, {svc, &authSecs}} {
			el, err := pipeline(run.nc, total, o.Sizes.InFlight, func(i int) *nats.Msg {
				m := nats.NewMsg(protocol.SubjectAppend + ".order.a-" + strconv.Itoa(i%1000))
				m.Header.Set(protocol.HeaderType, "OrderPlaced")
				m.Header.Set(protocol.HeaderID, "auth-"+strconv.Itoa(round)+"-"+strconv.Itoa(i))
				m.Data = payload(i)
				return m
			})
			if err != nil {
				return Result{}, err
			}
			*run.secs += el.Seconds()
		}
	}
	n := float64(total * authRounds)
	r := Result{Name: AuthScenario, Value: n / authSecs, Unit: "events/s", Raw: n / plainSecs, Target: "ratio >= 0.95",
		Note: fmt.Sprintf("os mode, %d in flight; a service with a bcrypt password and an append grant; raw: an anonymous client of a node without services, alternately", o.Sizes.InFlight)}
	r.Ratio = r.Value / r.Raw
	r.check(false, 0.95, r.Ratio)
	return r, nil
}

// startSecured starts an os-mode node with an admin (the env's client, for
// applying) and a service that may append to order, signed in over TCP.
func startSecured(ctx context.Context, o Options) (*env, *nats.Conn, error) {
	// The cost only slows the sign-in, not the appends measured; the
	// minimum keeps the bench test quick under the race detector.
	hash, err := bcrypt.GenerateFromPassword([]byte(authSecret), bcrypt.MinCost)
	if err != nil {
		return nil, nil, err
	}
	cfg := benchConfig(node.DurabilityOS)
	if cfg.DataDir, err = tempDir(); err != nil {
		return nil, nil, err
	}
	cfg.Services = []node.Service{
		{Name: "bench-admin", Password: string(hash), Admin: true},
		{Name: authService, Password: string(hash), Append: []string{"order"}},
	}
	e, err := startEnvAt(ctx, o, cfg, nats.UserInfo("bench-admin", authSecret), nats.CustomInboxPrefix("_INBOX_bench-admin"))
	if err != nil {
		return nil, nil, err
	}
	svc, err := nats.Connect(e.node.ClientURL(), nats.Name("datamesh-bench-auth"),
		nats.UserInfo(authService, authSecret), nats.CustomInboxPrefix("_INBOX_"+authService))
	if err != nil {
		e.stop(true)
		return nil, nil, err
	}
	return e, svc, nil
}
