package bench

import (
	"errors"
	"os"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// rawServer is the plain nats-server the raw fsync-mode append figures are
// measured on: the same version as the node's, in the same process, with
// sync_always, JetStream's own way to keep the same promise (each write
// fsynced before its ack). A server of its own, because the node runs its
// server without sync_always (it owns the fsync: see docs/performance.md).
// The os-mode raw figures are measured on the node's own server, as
// before.
type rawServer struct {
	srv *server.Server
	nc  *nats.Conn
	dir string
}

func startRaw() (*rawServer, error) {
	dir, err := os.MkdirTemp("", "datamesh-bench-raw-*")
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir,
		SyncAlways: true, NoSigs: true, NoLog: true})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, errors.New("raw nats-server did not start")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("datamesh-bench-raw"))
	if err != nil {
		srv.Shutdown()
		os.RemoveAll(dir)
		return nil, err
	}
	return &rawServer{srv: srv, nc: nc, dir: dir}, nil
}

func (r *rawServer) stop() {
	r.nc.Close()
	r.srv.Shutdown()
	r.srv.WaitForShutdown()
	os.RemoveAll(r.dir)
}
