package embed

import (
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

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
)

func exportAccount(peer string) string { return exportAccountPrefix + peer }
func peerAccount(peer string) string   { return peerAccountPrefix + peer }

// ExportAccount is the name of the account that holds the export streams
// granted to peer (a backup names the accounts its streams come from).
func ExportAccount(peer string) string { return exportAccount(peer) }

// meshAccounts adds each peer's accounts and users to opts. Dormant peers
// (removed from the config by a reload) keep their accounts, so the
// streams in them and the node's connections into them stay, but no
// longer a way to sign in.
func meshAccounts(cfg Config, k *keys, dormant []string, opts *server.Options) error {
	names := make([]string, 0, len(cfg.Peers)+len(dormant))
	for _, peer := range cfg.Peers {
		names = append(names, peer.Name)
	}
	names = append(names, dormant...)
	if len(names) == 0 {
		return nil
	}
	// Accounts come from config text: it is the one way to mark an account
	// for JetStream in the options, which a reload (adding leafnode remotes
	// for links) copies onto the live accounts. An account enabled only at
	// run time would have JetStream turned off by the first reload.
	var conf strings.Builder
	conf.WriteString("accounts {\n")
	for _, name := range names {
		fmt.Fprintf(&conf, "  %q: { jetstream: enabled }\n  %q: {}\n", exportAccount(name), peerAccount(name))
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
	for i, name := range names {
		exp, imp := byName[exportAccount(name)], byName[peerAccount(name)]
		if exp == nil || imp == nil {
			return fmt.Errorf("mesh accounts: %s missing from the parsed config", name)
		}
		opts.Accounts = append(opts.Accounts, exp, imp)
		opts.Nkeys = append(opts.Nkeys,
			&server.NkeyUser{Nkey: k.account(exp.Name).pub, Account: exp, AllowedConnectionTypes: inProcessOnly()},
			&server.NkeyUser{Nkey: k.account(imp.Name).pub, Account: imp, AllowedConnectionTypes: inProcessOnly()})
		if i < len(cfg.Peers) {
			peerUser(cfg, cfg.Peers[i], exp, opts)
		}
	}
	return nil
}

// peerUser is how peer's leafnode signs in to its export account: with its
// nkey, or with the shared secret.
func peerUser(cfg Config, peer Peer, exp *server.Account, opts *server.Options) {
	if peer.Nkey != "" {
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: peer.Nkey, Account: exp,
			AllowedConnectionTypes: connectionTypes(connLeafnode), Permissions: peerPermissions(cfg)})
		return
	}
	opts.Users = append(opts.Users, &server.User{
		Username: peer.Name, Password: peer.Secret, Account: exp,
		AllowedConnectionTypes: connectionTypes(connLeafnode),
		Permissions:            peerPermissions(cfg),
	})
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
				cfg.ExportSubjects,
				api + "STREAM.CREATE.>", api + "STREAM.UPDATE.>", api + "STREAM.DELETE.>",
				api + "STREAM.PURGE.>", api + "STREAM.MSG.DELETE.>", api + "STREAM.SNAPSHOT.>",
				api + "STREAM.RESTORE.>", api + "ACCOUNT.>",
			},
		},
	}
}

// keys are the nkeys the node's own in-process connections sign in with:
// one for the global account, one per mesh account. They live only in
// memory.
type keys struct {
	kp  nkeys.KeyPair
	pub string

	mu       sync.Mutex
	accounts map[string]*keys
}

func newKeys(peers []Peer) (*keys, error) {
	k, err := newKey()
	if err != nil {
		return nil, err
	}
	k.accounts = map[string]*keys{}
	return k, k.addPeers(peers)
}

// addPeers makes keys for the accounts of peers that have none yet.
// Keys are never removed: a peer removed by a reload keeps them (and
// its accounts keep their streams) until the node restarts.
func (k *keys) addPeers(peers []Peer) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, peer := range peers {
		for _, acc := range []string{exportAccount(peer.Name), peerAccount(peer.Name)} {
			if k.accounts[acc] != nil {
				continue
			}
			nk, err := newKey()
			if err != nil {
				return err
			}
			k.accounts[acc] = nk
		}
	}
	return nil
}

// dormant are the peers with keys that peers does not name.
func (k *keys) dormant(peers []Peer) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for acc := range k.accounts {
		name, ok := strings.CutPrefix(acc, exportAccountPrefix)
		if ok && !slices.ContainsFunc(peers, func(p Peer) bool { return p.Name == name }) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func (k *keys) account(name string) *keys {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.accounts[name]
}

func newKey() (*keys, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("internal nkey: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("internal nkey: %w", err)
	}
	return &keys{kp: kp, pub: pub}, nil
}

// remote is this node's leafnode to peer at u, bound to the peer's account
// here: signed in with the shared secret, or with MeshSeed when the peer
// knows this node by its nkey.
func (s *Server) remote(cfg Config, peer Peer, urls []*url.URL) (*server.RemoteLeafOpts, error) {
	r := &server.RemoteLeafOpts{LocalAccount: peerAccount(peer.Name)}
	if peer.Nkey != "" && len(cfg.MeshSeed) == 0 {
		return nil, fmt.Errorf("the peer is known by its nkey, so this node signs in with its seed: set mesh_seed")
	}
	for _, u := range urls {
		u = cloneURL(u)
		if peer.Nkey != "" {
			r.Nkey = string(cfg.MeshSeed)
			u.User = nil
		} else {
			u.User = url.UserPassword(cfg.Name, peer.Secret)
		}
		r.URLs = append(r.URLs, u)
	}
	if err := remoteTLS(cfg, r.URLs[0], r); err != nil {
		return nil, err
	}
	return r, nil
}

func cloneURL(u *url.URL) *url.URL {
	c := *u
	return &c
}
