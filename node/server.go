package node

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
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
func serverOptions(cfg Config, keys *nodeKeys) (*server.Options, error) {
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
		Nkeys:           []*server.NkeyUser{{Nkey: keys.pub, AllowedConnectionTypes: inProcessOnly()}},
		Users: []*server.User{{Username: serviceUser, Permissions: servicePermissions(cfg),
			// Not LEAFNODE: a leafnode without credentials must not land in
			// the node's own account (see meshAccounts).
			AllowedConnectionTypes: connectionTypes(connStandard, connWebsocket, connInProcess)}},
	}
	if err := meshAccounts(cfg, keys, opts); err != nil {
		return nil, err
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
		// Peers reach this node at the URL of their Link resources (maybe
		// through a proxy), never at addresses the server would gossip.
		opts.LeafNode.NoAdvertise = true
	}
	return opts, nil
}

// Connection types (jwt.ConnectionType*) that users may be limited to.
const (
	connStandard  = "STANDARD"
	connWebsocket = "WEBSOCKET"
	connLeafnode  = "LEAFNODE"
	connInProcess = "IN_PROCESS"
)

func connectionTypes(types ...string) map[string]struct{} {
	m := make(map[string]struct{}, len(types))
	for _, t := range types {
		m[t] = struct{}{}
	}
	return m
}

func inProcessOnly() map[string]struct{} { return connectionTypes(connInProcess) }

// Accounts of the mesh. The node's own log, registry and API live in the
// global account, which no leafnode ever joins. For each configured peer P:
//   - exportAccount(P) holds the streams of the exports granted to P; P's
//     leafnode signs in there, and sees nothing else;
//   - peerAccount(P) is where this node's links to P solicit their leafnode
//     and read P's exports.
//
// One account pair per peer keeps the two traps of leafnodes away: no
// account is joined to another through two paths, so leafnode loop
// detection never fires, even for cycles of nodes; and no account holds a
// stream on both ends of a leafnode, so a subject published on one node is
// never captured by a stream of the other.
const (
	exportAccountPrefix = "EXP_"
	peerAccountPrefix   = "PEER_"
	// exportSubjectPrefix starts the subjects of export streams:
	// export.<export>.<aggregate>.<id>.<type>.
	exportSubjectPrefix = "export"
	// subjectMeshCatalog is what a peer asks for this node's catalog as its
	// exports show it.
	subjectMeshCatalog = "mesh.catalog"
)

func exportAccount(peer string) string { return exportAccountPrefix + peer }
func peerAccount(peer string) string   { return peerAccountPrefix + peer }

// meshAccounts adds each peer's accounts and users to opts.
func meshAccounts(cfg Config, keys *nodeKeys, opts *server.Options) error {
	peers := sortedPeers(cfg)
	if len(peers) == 0 {
		return nil
	}
	// Accounts come from config text: it is the one way to mark an account
	// for JetStream in the options, which a reload (adding leafnode remotes
	// for links) copies onto the live accounts. An account enabled only at
	// run time would have JetStream turned off by the first reload.
	var conf strings.Builder
	conf.WriteString("accounts {\n")
	for _, peer := range peers {
		fmt.Fprintf(&conf, "  %q: { jetstream: enabled }\n  %q: {}\n", exportAccount(peer), peerAccount(peer))
	}
	conf.WriteString("}\n")
	parsed := &server.Options{}
	if err := parsed.ProcessConfigString(conf.String()); err != nil {
		return fmt.Errorf("mesh accounts: %w", err)
	}
	byName := map[string]*server.Account{}
	for _, a := range parsed.Accounts {
		byName[a.Name] = a
	}
	for _, peer := range peers {
		exp, imp := byName[exportAccount(peer)], byName[peerAccount(peer)]
		if exp == nil || imp == nil {
			return fmt.Errorf("mesh accounts: %s missing from the parsed config", peer)
		}
		opts.Accounts = append(opts.Accounts, exp, imp)
		opts.Nkeys = append(opts.Nkeys,
			&server.NkeyUser{Nkey: keys.account(exp.Name).pub, Account: exp, AllowedConnectionTypes: inProcessOnly()},
			&server.NkeyUser{Nkey: keys.account(imp.Name).pub, Account: imp, AllowedConnectionTypes: inProcessOnly()})
		opts.Users = append(opts.Users, &server.User{
			Username: peer, Password: cfg.Peers[peer].Secret, Account: exp,
			AllowedConnectionTypes: connectionTypes(connLeafnode),
			Permissions:            peerPermissions(cfg),
		})
	}
	return nil
}

// peerPermissions is what a peer's leafnode may send into its export
// account: JetStream requests to read the export streams (consumers, info,
// direct gets) and catalog requests; not writes to the streams, not stream
// changes. Everything else in the account is the peer's own exports anyway.
func peerPermissions(cfg Config) *server.Permissions {
	api := "$JS." + cfg.Name + ".API."
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: []string{">"},
			Deny: []string{
				exportSubjectPrefix + ".>",
				api + "STREAM.CREATE.>", api + "STREAM.UPDATE.>", api + "STREAM.DELETE.>",
				api + "STREAM.PURGE.>", api + "STREAM.MSG.DELETE.>", api + "STREAM.SNAPSHOT.>",
				api + "STREAM.RESTORE.>", api + "ACCOUNT.>",
			},
		},
	}
}

// servicePermissions keeps the log append-only through the API: services may
// read the stream and create consumers, but not publish into event subjects,
// change or purge the stream, write the registry, or subscribe to the node's
// API subjects (which would steal requests).
func servicePermissions(cfg Config) *server.Permissions {
	st, kv, lk := cfg.StreamName, "KV_"+registryKV, "KV_"+linksKV
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
				"$KV." + linksKV + ".>",
				"$JS.API.STREAM.UPDATE." + lk, "$JS.API.STREAM.DELETE." + lk,
				"$JS.API.STREAM.PURGE." + lk, "$JS.API.STREAM.MSG.DELETE." + lk,
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

// maxPayload leaves room in one message for a whole event plus its
// attributes, and for read replies that carry several events.
func maxPayload(cfg Config) int32 {
	return int32(max(maxPayloadFloor, 4*cfg.MaxEventBytes))
}

// nodeKeys are the nkeys the node's own in-process connections sign in
// with: one for the global account, one per mesh account. They live only in
// memory.
type nodeKeys struct {
	kp       nkeys.KeyPair
	pub      string
	accounts map[string]*nodeKeys
}

func newNodeKeys(cfg Config) (*nodeKeys, error) {
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	k.accounts = map[string]*nodeKeys{}
	for _, peer := range sortedPeers(cfg) {
		for _, acc := range []string{exportAccount(peer), peerAccount(peer)} {
			if k.accounts[acc], err = newKey(); err != nil {
				return nil, err
			}
		}
	}
	return k, nil
}

func (k *nodeKeys) account(name string) *nodeKeys { return k.accounts[name] }

func newKey() (*nodeKeys, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("internal nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("internal nkey: %w", err)
	}
	return &nodeKeys{kp: kp, pub: pub}, nil
}

func sortedPeers(cfg Config) []string {
	peers := make([]string, 0, len(cfg.Peers))
	for p := range cfg.Peers {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	return peers
}
