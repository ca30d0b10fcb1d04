package node

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

const (
	serviceUser = "service"
	registryKV  = "datamesh_registry"
	// maxPayloadFloor is nats-server's default max_payload.
	maxPayloadFloor = 1024 * 1024
	readyTimeout    = 30 * time.Second
)

// serverOptions translates the node config into nats-server options.
//
// Two identities exist: the node's own in-process connections sign in with
// an nkey made at start-up that lives only in memory; every other client is
// serviceUser (the no-auth user), which may do anything except write to the
// log or the registry behind the node's back, or serve the node's API.
func serverOptions(cfg Config, internalKey string) (*server.Options, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	opts := &server.Options{
		ServerName:      cfg.Name,
		Host:            host,
		Port:            port,
		JetStream:       true,
		JetStreamDomain: cfg.Name,
		StoreDir:        cfg.DataDir,
		NoSigs:          true,
		MaxPayload:      maxPayload(cfg),
		NoAuthUser:      serviceUser,
		SyncAlways:      cfg.Durability == DurabilityFsync,
		Nkeys:           []*server.NkeyUser{{Nkey: internalKey}},
		Users:           []*server.User{{Username: serviceUser, Permissions: servicePermissions(cfg)}},
	}
	if cfg.HTTP != "" {
		opts.HTTPHost, opts.HTTPPort, err = splitHostPort(cfg.HTTP)
		if err != nil {
			return nil, fmt.Errorf("http: %w", err)
		}
	}
	if cfg.LeafListen != "" {
		opts.LeafNode.Host, opts.LeafNode.Port, err = splitHostPort(cfg.LeafListen)
		if err != nil {
			return nil, fmt.Errorf("leaf_listen: %w", err)
		}
	}
	return opts, nil
}

// servicePermissions keeps the log append-only through the API: services may
// read the stream and create consumers, but not publish into event subjects,
// change or purge the stream, write the registry, or subscribe to the node's
// API subjects (which would steal requests).
func servicePermissions(cfg Config) *server.Permissions {
	st, kv := cfg.StreamName, "KV_"+registryKV
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{">"},
			Deny: []string{
				cfg.SubjectPrefix + ".>", SubjectChanges + ".>",
				"$JS.API.STREAM.UPDATE." + st, "$JS.API.STREAM.DELETE." + st,
				"$JS.API.STREAM.PURGE." + st, "$JS.API.STREAM.MSG.DELETE." + st,
				"$KV." + registryKV + ".>",
				"$JS.API.STREAM.UPDATE." + kv, "$JS.API.STREAM.DELETE." + kv,
				"$JS.API.STREAM.PURGE." + kv, "$JS.API.STREAM.MSG.DELETE." + kv,
			},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{">"},
			Deny:  []string{SubjectAppend + ".>", SubjectRead + ".>", SubjectQuery + ".>", "dm.admin.>", SubjectDiscovery},
		},
	}
}

// checkDataDir makes sure the data directory exists and is writable, so
// that a bad path is a one-line error rather than a JetStream failure later.
func checkDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(filepath.Clean(name))
}

// newInternalKey makes the nkey the node's own connections sign in with.
func newInternalKey() (nkeys.KeyPair, string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("internal nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, "", fmt.Errorf("internal nkey: %w", err)
	}
	return kp, pub, nil
}

// maxPayload leaves room in one message for a whole event plus its
// attributes, and for read replies that carry several events.
func maxPayload(cfg Config) int32 {
	return int32(max(maxPayloadFloor, 4*cfg.MaxEventBytes))
}
