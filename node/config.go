package node

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/schemas"
)

// Defaults for a node started with no flags and no config file.
const (
	DefaultDataDir       = "./data"
	DefaultListen        = "127.0.0.1:4222"
	DefaultHTTP          = "127.0.0.1:8222"
	DefaultLeafListen    = "127.0.0.1:7422"
	DefaultSubjectPrefix = "evt"
	DefaultStreamName    = "EVENTS"
	DefaultMaxEventBytes = 512 * 1024
	DefaultMaxBatch      = 1000
	DefaultDedupWindow   = 5 * time.Minute
	DefaultAppendTimeout = eventlog.DefaultAppendTimeout

	DurabilityOS    = "os"
	DurabilityFsync = "fsync"

	LogFormatText = "text"
	LogFormatJSON = "json"
)

// Config is everything a node needs to start. Build it with DefaultConfig,
// overlay a file (LoadConfigFile), env and flags, then call Validate.
type Config struct {
	// Name identifies the node in the mesh; it is also the JetStream domain.
	Name string `json:"name"`
	// DataDir holds JetStream's files (and later the projections').
	DataDir string `json:"data"`
	// Listen is the NATS client address services connect to. Port -1 picks a free port.
	Listen string `json:"listen"`
	// HTTP is the monitoring address (/healthz and nats-server's pages); empty disables it.
	HTTP string `json:"http"`
	// LeafListen is the leafnode address peers connect to, to import this
	// node's exports; empty disables it.
	LeafListen string `json:"leaf_listen"`
	// Peers are the nodes this node shares events with, by node name. A
	// peer's secret is how it signs in to import this node's exports, and
	// how this node signs in to the peer to import the peer's exports: both
	// configs hold the same secret.
	Peers map[string]Peer `json:"peers,omitempty"`
	// Services are the identities that may sign in to the client port and
	// what each may do (docs/security.md). With none, anonymous clients
	// get full access, and only while every listener is on loopback.
	Services []Service `json:"services,omitempty"`
	// Insecure lets a node without services listen off loopback.
	Insecure bool `json:"insecure,omitempty"`
	// TLS secures the client port, LeafTLS the leaf port (and this node's
	// links to its peers), HTTPTLS the monitoring port.
	TLS     *TLS `json:"tls,omitempty"`
	LeafTLS *TLS `json:"leaf_tls,omitempty"`
	HTTPTLS *TLS `json:"http_tls,omitempty"`
	// MeshSeed is the file (mode 0600) of this node's nkey seed, with
	// which it signs in to peers that know it by its public key.
	MeshSeed string `json:"mesh_seed,omitempty"`
	// ServerName names this server: unique in a cluster (the host name by
	// default there); the node's name standalone.
	ServerName string `json:"server_name,omitempty"`
	// Cluster makes the node one server of a JetStream cluster; every
	// server of it has the same name (the JetStream domain) and resources.
	Cluster *Cluster `json:"cluster,omitempty"`
	// Replicas of every stream the node creates: 1, 3 or 5 (default 1
	// standalone, 3 in a cluster).
	Replicas int `json:"replicas,omitempty"`
	// RequireContracts refuses appends of event types that have no contract.
	RequireContracts bool `json:"require_contracts"`
	// MaxEventBytes bounds one event's data; larger appends get too_large.
	MaxEventBytes int `json:"max_event_bytes"`
	// MaxBatch bounds the number of events in one atomic batch (JetStream allows 1000).
	MaxBatch int `json:"max_batch"`
	// MaxLogBytes bounds the event log's size on disk (JetStream max_bytes
	// on the stream, discard new): an append that would exceed it is
	// refused with insufficient_storage and nothing stored is ever dropped.
	// 0 or -1: unlimited.
	MaxLogBytes int64 `json:"max_log_bytes"`
	// DedupWindow is how long a ce-id is remembered for idempotent appends.
	DedupWindow Duration `json:"dedup_window"`
	// LogLevel is trace, debug, info, warn or error.
	LogLevel string `json:"log_level"`
	// LogFormat is text (the default) or json: one JSON object per line,
	// with the component and the projection, link or export it concerns
	// as fields.
	LogFormat string `json:"log_format"`
	// Durability is os (JetStream's default: an acknowledged event survives a
	// process crash, and reaches the disk within 2 minutes) or fsync (every
	// write is fsynced before it is acknowledged: it survives a power loss).
	Durability string `json:"durability"`

	// SubjectPrefix is the first token of stored event subjects:
	// <prefix>.<aggregate>.<id>.<type>. Not settable from the CLI.
	SubjectPrefix string `json:"-"`
	// StreamName is the JetStream stream that holds the log.
	StreamName string `json:"-"`
}

// Peer is what a node knows of one peer node.
type Peer struct {
	// Secret is the shared secret of this pair of nodes.
	Secret string `json:"secret,omitempty"`
	// Nkey is the peer's public nkey (its mesh_seed's), instead of a
	// secret: the peer signs in to this node with its seed.
	Nkey string `json:"nkey,omitempty"`
}

// Duration is a time.Duration that reads "5m" style strings from YAML/JSON.
type Duration time.Duration

// UnmarshalJSON accepts a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		*d = Duration(time.Duration(n * float64(time.Second)))
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(time.Duration(d).String())), nil
}

// DefaultConfig returns the configuration of `datamesh node` with no flags.
func DefaultConfig() Config {
	return Config{
		Name:          DefaultName(),
		DataDir:       DefaultDataDir,
		Listen:        DefaultListen,
		HTTP:          DefaultHTTP,
		LeafListen:    DefaultLeafListen,
		MaxEventBytes: DefaultMaxEventBytes,
		MaxBatch:      DefaultMaxBatch,
		DedupWindow:   Duration(DefaultDedupWindow),
		LogLevel:      "info",
		LogFormat:     LogFormatText,
		Durability:    DurabilityFsync,
		SubjectPrefix: DefaultSubjectPrefix,
		StreamName:    DefaultStreamName,
	}
}

var invalidNameChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// DefaultName derives a node name from the host name, keeping only the
// characters a JetStream domain allows.
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "datamesh"
	}
	h = strings.Split(h, ".")[0]
	h = strings.Trim(invalidNameChars.ReplaceAllString(h, "-"), "-")
	if h == "" {
		return "datamesh"
	}
	return h
}

// LoadConfigFile overlays the YAML file at path onto cfg. Unknown keys are
// errors, which name the file and the line: `node.yaml:3:1: unknown field
// "listn" in config (did you mean "listen"?)`.
func LoadConfigFile(cfg *Config, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	if err := schemas.DecodeStrictAs(b, cfg, "config"); err != nil {
		return schemas.InFile(err, path)
	}
	return nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Validate checks the configuration and returns every problem found.
func (c Config) Validate() error {
	var errs []error
	if !validName.MatchString(c.Name) {
		errs = append(errs, fmt.Errorf("name %q: use letters, digits, '-' and '_' only", c.Name))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data: a data directory is required"))
	}
	for _, a := range []struct{ field, v string }{{"listen", c.Listen}, {"http", c.HTTP}, {"leaf_listen", c.LeafListen}} {
		if a.v == "" && a.field != "listen" {
			continue
		}
		if _, _, err := embed.SplitHostPort(a.v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a.field, err))
		}
	}
	for name, p := range c.Peers {
		if !validName.MatchString(name) || name == c.Name {
			errs = append(errs, fmt.Errorf("peers: %q: a peer is another node's name (letters, digits, '-' and '_')", name))
		}
		errs = append(errs, checkPeer(name, p)...)
	}
	errs = append(errs, c.validateServices()...)
	errs = append(errs, c.validateCluster()...)
	errs = append(errs, c.validateTLS()...)
	if c.MeshSeed != "" {
		if err := checkSeedFile(c.MeshSeed); err != nil {
			errs = append(errs, err)
		}
	}
	if c.MaxEventBytes <= 0 || c.MaxEventBytes > 8*1024*1024 {
		errs = append(errs, fmt.Errorf("max_event_bytes %d: must be between 1 and 8MiB", c.MaxEventBytes))
	}
	if c.MaxLogBytes < -1 || (c.MaxLogBytes > 0 && c.MaxLogBytes < int64(eventlog.MaxMsgSize(c.MaxEventBytes))) {
		errs = append(errs, fmt.Errorf("max_log_bytes %d: must be 0 or -1 (unlimited), or at least %d (max_event_bytes and room for its headers)",
			c.MaxLogBytes, eventlog.MaxMsgSize(c.MaxEventBytes)))
	}
	if c.MaxBatch <= 0 || c.MaxBatch > 1000 {
		errs = append(errs, fmt.Errorf("max_batch %d: must be between 1 and 1000 (JetStream's atomic batch limit)", c.MaxBatch))
	}
	if c.DedupWindow < 0 {
		errs = append(errs, errors.New("dedup_window: must not be negative"))
	}
	if c.Durability != DurabilityOS && c.Durability != DurabilityFsync {
		errs = append(errs, fmt.Errorf("durability %q: want %s or %s", c.Durability, DurabilityOS, DurabilityFsync))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "" && c.LogFormat != LogFormatText && c.LogFormat != LogFormatJSON {
		errs = append(errs, fmt.Errorf("log_format %q: want %s or %s", c.LogFormat, LogFormatText, LogFormatJSON))
	}
	if c.SubjectPrefix == "" || strings.ContainsAny(c.SubjectPrefix, ".*> \t") {
		errs = append(errs, fmt.Errorf("subject prefix %q: must be one NATS token", c.SubjectPrefix))
	}
	if c.StreamName == "" {
		errs = append(errs, errors.New("stream name is required"))
	}
	return errors.Join(errs...)
}

// NewLogger is the root logger of a node with cfg's level and format,
// writing to out; each part names itself below it.
func NewLogger(cfg Config, out io.Writer) hclog.Logger {
	level, _ := parseLevel(cfg.LogLevel)
	return hclog.New(&hclog.LoggerOptions{
		Name:       "datamesh",
		Level:      level,
		Output:     out,
		JSONFormat: cfg.LogFormat == LogFormatJSON,
	})
}

func parseLevel(s string) (hclog.Level, error) {
	if s == "" {
		return hclog.Info, nil
	}
	l := hclog.LevelFromString(s)
	if l == hclog.NoLevel {
		return l, fmt.Errorf("log_level %q: use trace, debug, info, warn or error", s)
	}
	return l, nil
}

func sortedPeers(cfg Config) []string {
	peers := make([]string, 0, len(cfg.Peers))
	for p := range cfg.Peers {
		peers = append(peers, p)
	}
	sort.Strings(peers)
	return peers
}

// listeners are the addresses the node listens on, for embed.CheckListen.
func (c Config) listeners() []embed.Listener {
	ls := []embed.Listener{
		{Setting: "listen", Flag: "--listen", Addr: c.Listen},
		{Setting: "leaf_listen", Flag: "--leaf-listen", Addr: c.LeafListen},
		{Setting: "http", Flag: "--http", Addr: c.HTTP},
	}
	if c.Cluster != nil {
		ls = append(ls, embed.Listener{Setting: "cluster.listen", Flag: "--cluster-listen", Addr: c.Cluster.Listen})
	}
	return ls
}
