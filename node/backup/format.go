package backup

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// A backup file is a tar archive, readable with tar(1):
//
//	manifest.json                          the Manifest
//	streams/<account>/<stream>/stream.json the StreamRecord: config and state as snapshotted
//	streams/<account>/<stream>/snapshot.000001, .000002, ...
//	                                       the stream's JetStream snapshot, in the chunks
//	                                       JetStream sent; concatenated, they are the snapshot
//	... one stream.json and its chunks per stream, in the manifest's order
//	SHA256SUMS                             sha256sum(1) lines for manifest.json, each
//	                                       stream.json and each stream's whole snapshot
//	                                       (named streams/<account>/<stream>/snapshot)
//
// Chunks are entries of their own so that a backup is written as it is
// read, with no temporary file: a tar entry needs its size up front.
const (
	// Format names this layout in the manifest.
	Format       = "datamesh-backup/1"
	manifestName = "manifest.json"
	sumsName     = "SHA256SUMS"
	streamFile   = "stream.json"
	snapshotFile = "snapshot"
)

// Manifest describes a backup: whose it is and what it holds.
type Manifest struct {
	Format string `json:"format"`
	// Node is the node's name, also its JetStream domain: a restored
	// directory is for a node of that name.
	Node string `json:"node"`
	// Version is the DataMesh version that wrote the backup.
	Version string    `json:"version"`
	Created time.Time `json:"created"`
	// Accounts are the accounts the streams live in: the node's own ($G)
	// and one export account per configured peer.
	Accounts []Account `json:"accounts"`
	// Streams are in the order they are snapshotted and stored.
	Streams []Stream `json:"streams"`
}

// Account is an account of the node's server.
type Account struct {
	Name string `json:"name"`
	// Peer is set on an export account: the peer it holds exports for.
	Peer string `json:"peer,omitempty"`
}

// Stream is a stream of the backup, as it was when the backup started.
type Stream struct {
	Account string `json:"account"`
	Name    string `json:"name"`
	// Config is the stream's configuration as JetStream reports it.
	Config json.RawMessage `json:"config"`
	State  State           `json:"state"`
}

// State is what a stream holds (the fields of JetStream's stream state
// that a backup checks).
type State struct {
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// StreamRecord is a stream's stream.json: the config and the state
// JetStream's snapshot reported, which its restore request takes back.
type StreamRecord struct {
	Config json.RawMessage `json:"config"`
	State  json.RawMessage `json:"state"`
}

func (r StreamRecord) state() (State, error) {
	var s State
	err := json.Unmarshal(r.State, &s)
	return s, err
}

func streamDir(account, name string) string { return path.Join("streams", account, name) }

// archiveWriter writes a backup's entries and their checksums.
type archiveWriter struct {
	tw      *tar.Writer
	modTime time.Time
	sums    []string // sha256sum lines, in the order written
	// chunk state of the stream being written
	dir   string
	chunk int
	hash  hash.Hash
}

func newArchiveWriter(w io.Writer, modTime time.Time) *archiveWriter {
	return &archiveWriter{tw: tar.NewWriter(w), modTime: modTime}
}

func (a *archiveWriter) entry(name string, b []byte) error {
	hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: a.modTime, Typeflag: tar.TypeReg}
	if err := a.tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err := a.tw.Write(b)
	return err
}

// file writes one checksummed entry.
func (a *archiveWriter) file(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	a.sum(name, sha256.Sum256(b))
	return a.entry(name, b)
}

func (a *archiveWriter) sum(name string, s [sha256.Size]byte) {
	a.sums = append(a.sums, hex.EncodeToString(s[:])+"  "+name+"\n")
}

// beginStream writes the stream's stream.json; its chunks follow.
func (a *archiveWriter) beginStream(account, name string, rec StreamRecord) error {
	a.dir, a.chunk, a.hash = streamDir(account, name), 0, sha256.New()
	return a.file(path.Join(a.dir, streamFile), rec)
}

func (a *archiveWriter) writeChunk(b []byte) error {
	a.chunk++
	a.hash.Write(b)
	return a.entry(fmt.Sprintf("%s/%s.%06d", a.dir, snapshotFile, a.chunk), b)
}

func (a *archiveWriter) endStream() {
	var s [sha256.Size]byte
	copy(s[:], a.hash.Sum(nil))
	a.sum(path.Join(a.dir, snapshotFile), s)
}

// close writes SHA256SUMS and the end of the archive.
func (a *archiveWriter) close() error {
	if err := a.entry(sumsName, []byte(strings.Join(a.sums, ""))); err != nil {
		return err
	}
	return a.tw.Close()
}

// contents is what a checked backup holds, besides the snapshots' bytes.
type contents struct {
	manifest *Manifest
	records  map[string]StreamRecord // by streamDir
	// snapshotBytes is the size of every snapshot together.
	snapshotBytes int64
	// sha256 is the whole file's.
	sha256 string
	size   int64
}

// check reads a whole backup and checks its layout and every checksum,
// before anything is restored from it.
func check(r io.Reader) (*contents, error) {
	fileHash := sha256.New()
	counted := &countingReader{r: io.TeeReader(r, fileHash)}
	k := &checker{tr: tar.NewReader(counted), c: &contents{records: map[string]StreamRecord{}}, sums: map[string]string{}}
	for {
		hdr, err := k.tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt("not a whole backup archive: %v", err)
		}
		if k.stored != nil {
			return nil, corrupt("entry %s after %s", hdr.Name, sumsName)
		}
		if err := k.entry(hdr.Name); err != nil {
			return nil, err
		}
	}
	c := k.c
	if c.manifest == nil {
		return nil, corrupt("empty archive")
	}
	if k.stored == nil {
		return nil, corrupt("no %s: the backup was cut short", sumsName)
	}
	if err := compareSums(k.sums, k.stored); err != nil {
		return nil, err
	}
	if err := checkOrder(c.manifest, k.order); err != nil {
		return nil, err
	}
	// The tar reader stops at the end-of-archive marker; the rest is padding.
	if _, err := io.Copy(io.Discard, counted); err != nil {
		return nil, corrupt("read: %v", err)
	}
	c.sha256, c.size = hex.EncodeToString(fileHash.Sum(nil)), counted.n
	return c, nil
}

// checker walks the entries of a backup archive in order.
type checker struct {
	tr     *tar.Reader
	c      *contents
	sums   map[string]string // name → hex, as computed
	order  []string          // the stream dirs, in archive order
	stored map[string]string // SHA256SUMS, once read

	// The stream whose snapshot chunks come now.
	dir        string
	chunk      int
	streamHash hash.Hash
}

// entry checks the entry name, which the tar reader is at.
func (k *checker) entry(name string) error {
	switch {
	case k.c.manifest == nil:
		return k.manifest(name)
	case name == sumsName:
		k.endStream()
		b, err := io.ReadAll(k.tr)
		if err != nil {
			return corrupt("%s: %v", sumsName, err)
		}
		k.stored, err = parseSums(b)
		return err
	case path.Base(name) == streamFile:
		return k.stream(name)
	default:
		return k.snapshotChunk(name)
	}
}

func (k *checker) manifest(name string) error {
	if name != manifestName {
		return corrupt("the archive starts with %s, not %s: is it a DataMesh backup?", name, manifestName)
	}
	b, err := readEntry(k.tr, k.sums, name)
	if err != nil {
		return err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return corrupt("%s: %v", manifestName, err)
	}
	if m.Format != Format {
		return corrupt("%s: format %q, want %q", manifestName, m.Format, Format)
	}
	k.c.manifest = &m
	return nil
}

// stream starts the next stream: its record, then its snapshot's chunks.
func (k *checker) stream(name string) error {
	k.endStream()
	b, err := readEntry(k.tr, k.sums, name)
	if err != nil {
		return err
	}
	var rec StreamRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return corrupt("%s: %v", name, err)
	}
	k.dir, k.chunk, k.streamHash = path.Dir(name), 0, sha256.New()
	k.c.records[k.dir] = rec
	k.order = append(k.order, k.dir)
	return nil
}

func (k *checker) snapshotChunk(name string) error {
	want := fmt.Sprintf("%s/%s.%06d", k.dir, snapshotFile, k.chunk+1)
	if k.dir == "" || name != want {
		return corrupt("unexpected entry %s (want %s)", name, want)
	}
	k.chunk++
	n, err := io.Copy(k.streamHash, k.tr)
	if err != nil {
		return corrupt("%s: %v", name, err)
	}
	k.c.snapshotBytes += n
	return nil
}

// endStream records the checksum of the stream whose chunks ended.
func (k *checker) endStream() {
	if k.dir != "" {
		k.sums[path.Join(k.dir, snapshotFile)] = hex.EncodeToString(k.streamHash.Sum(nil))
	}
	k.dir = ""
}

func readEntry(tr *tar.Reader, sums map[string]string, name string) ([]byte, error) {
	b, err := io.ReadAll(tr)
	if err != nil {
		return nil, corrupt("%s: %v", name, err)
	}
	s := sha256.Sum256(b)
	sums[name] = hex.EncodeToString(s[:])
	return b, nil
}

func parseSums(b []byte) (map[string]string, error) {
	sums := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 2*sha256.Size {
			return nil, corrupt("%s: bad line %q", sumsName, sc.Text())
		}
		sums[name] = sum
	}
	return sums, nil
}

func compareSums(got, stored map[string]string) error {
	names := make([]string, 0, len(stored))
	for name := range stored {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		g, ok := got[name]
		if !ok {
			return corrupt("%s lists %s, which the archive does not hold", sumsName, name)
		}
		if g != stored[name] {
			return corrupt("%s: checksum %s, want %s: the file was changed or damaged", name, g, stored[name])
		}
	}
	if len(got) != len(stored) {
		return corrupt("%s lists %d parts, the archive holds %d", sumsName, len(stored), len(got))
	}
	return nil
}

// checkOrder checks that the archive holds every stream of the manifest,
// in its order, and no other.
func checkOrder(m *Manifest, order []string) error {
	if len(order) != len(m.Streams) {
		return corrupt("the manifest names %d streams, the archive holds %d", len(m.Streams), len(order))
	}
	for i, s := range m.Streams {
		if want := streamDir(s.Account, s.Name); order[i] != want {
			return corrupt("stream %d is %s, the manifest says %s", i+1, order[i], want)
		}
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
