package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/embed"
	"github.com/datamesh/datamesh/node/eventlog"
)

// The tests run the runner against a bare embedded server: a bucket
// (KV_links, as the node's links bucket), a log (LOG) and one export
// stream in peer p's export account.
const (
	testNode   = "t"
	testPeer   = "p"
	testBucket = "links"
	testLog    = "LOG"
	testExport = "EXPORT_x"
)

func startServer(t *testing.T, dir string) *embed.Server {
	t.Helper()
	srv, err := embed.New(embed.Config{Name: testNode, DataDir: dir, NoListen: true, LogLevel: hclog.Warn,
		Peers: []embed.Peer{{Name: testPeer, Secret: "s"}}, ExportSubjects: meshlink.ExportSubjectPrefix + ".>"}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

type streams struct {
	js, exp jetstream.JetStream
	nc      *nats.Conn
	kv      jetstream.KeyValue
}

func open(t *testing.T, srv *embed.Server) *streams {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	enc, err := srv.ConnectExport(testPeer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(enc.Close)
	s := &streams{nc: nc}
	s.js, _ = jetstream.New(nc)
	s.exp, _ = jetstream.New(enc)
	return s
}

// fill creates the streams and writes to them: 30 log messages, the
// last 3 an atomic batch, 5 export copies, 2 keys in the bucket.
func fill(t *testing.T, s *streams) {
	t.Helper()
	ctx := context.Background()
	var err error
	if s.kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: testBucket, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.js.CreateStream(ctx, jetstream.StreamConfig{Name: testLog, Subjects: []string{"evt.>"},
		Storage: jetstream.FileStorage, AllowAtomicPublish: true, DenyDelete: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.exp.CreateStream(ctx, jetstream.StreamConfig{Name: testExport, Subjects: []string{"export.x.>"},
		Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	for i := range 27 {
		if _, err := s.js.Publish(ctx, fmt.Sprintf("evt.order.o-%d.Placed", i), fmt.Appendf(nil, `{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
	}
	batch := []*nats.Msg{nats.NewMsg("evt.order.b.A"), nats.NewMsg("evt.order.b.B"), nats.NewMsg("evt.order.b.C")}
	if seq, err := eventlog.PublishAtomic(ctx, s.js, s.nc, batch); err != nil || seq != 30 {
		t.Fatalf("atomic batch: last seq %d, %v", seq, err)
	}
	for i := range 5 {
		if _, err := s.exp.Publish(ctx, fmt.Sprintf("export.x.order.o-%d.Placed", i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"checkpoint.a", "checkpoint.b"} {
		if _, err := s.kv.PutString(ctx, k, "v1"); err != nil {
			t.Fatal(err)
		}
	}
}

func newRunner(t *testing.T, srv *embed.Server) *Runner {
	t.Helper()
	r := New(Config{Node: testNode, Version: "test", Log: testLog, Buckets: []string{"KV_" + testBucket}, Peers: []string{testPeer}},
		srv, hclog.NewNullLogger())
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// takeBackup writes a backup of srv into a file.
func takeBackup(t *testing.T, r *Runner) (string, []Stream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job, err := r.Prepare(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer job.Close()
	var buf bytes.Buffer
	taken, err := job.WriteTo(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "b.dmbackup")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, taken
}

func TestMidBatch(t *testing.T) {
	s := open(t, startServer(t, t.TempDir()))
	fill(t, s)
	for seq, want := range map[uint64]bool{27: false, 28: true, 29: true, 30: false, 0: false} {
		got, err := midBatch(context.Background(), s.nc, testLog, seq)
		if err != nil || got != want {
			t.Errorf("midBatch(%d) = %v, %v; want %v", seq, got, err, want)
		}
	}
}

// TestBucketWrittenDuringItsSnapshot writes a key of the bucket while its
// snapshot is read: the snapshot is taken again, and the restored bucket
// holds the new value and every other key.
func TestBucketWrittenDuringItsSnapshot(t *testing.T) {
	srv := startServer(t, t.TempDir())
	s := open(t, srv)
	fill(t, s)
	var reads int
	testHookBucketRead = func(stream string) {
		reads++
		if reads == 1 {
			if _, err := s.kv.PutString(context.Background(), "checkpoint.a", "v2"); err != nil {
				t.Error(err)
			}
		}
	}
	defer func() { testHookBucketRead = nil }()
	file, taken := takeBackup(t, newRunner(t, srv))
	if reads != 2 {
		t.Fatalf("bucket read %d times, want 2: once changed, once not", reads)
	}
	want := []string{"KV_links", testExport, testLog}
	for i, st := range taken {
		if st.Name != want[i] {
			t.Fatalf("streams in order %+v, want %v", taken, want)
		}
	}
	if taken[0].State.LastSeq != 3 || taken[2].State.LastSeq != 30 {
		t.Fatalf("snapshotted states: %+v", taken)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	res, err := Restore(context.Background(), file, dir, RestoreOptions{}, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if res.Manifest.Node != testNode || len(res.Streams) != 3 || res.Size == 0 || len(res.SHA256) != 64 {
		t.Fatalf("restored: %+v", res)
	}
	r := open(t, startServer(t, dir))
	ctx := context.Background()
	kv, err := r.js.KeyValue(ctx, testBucket)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"checkpoint.a": "v2", "checkpoint.b": "v1"} {
		if e, err := kv.Get(ctx, k); err != nil || string(e.Value()) != v {
			t.Fatalf("restored %s: %v, want %s", k, err, v)
		}
	}
	for js, name := range map[jetstream.JetStream]string{r.js: testLog, r.exp: testExport} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("restored %s: %v", name, err)
		}
		m, err := st.GetMsg(ctx, 1)
		if err != nil || (name == testLog && string(m.Data) != `{"n":0}`) {
			t.Fatalf("restored %s message 1: %+v, %v", name, m, err)
		}
	}
}

func TestRestoreRefuses(t *testing.T) {
	srv := startServer(t, t.TempDir())
	fill(t, open(t, srv))
	file, _ := takeBackup(t, newRunner(t, srv))
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	variant := func(name string, b []byte) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flipped := append([]byte{}, good...)
	flipped[len(flipped)/2] ^= 0xff // inside the log's snapshot
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, dir string
		opts            RestoreOptions
		kind            error
	}{
		{"non-empty dir", file, full, RestoreOptions{}, ErrInvalid},
		{"damaged", variant("flipped", flipped), "", RestoreOptions{}, ErrCorrupt},
		{"cut short", variant("short", good[:len(good)-3000]), "", RestoreOptions{}, ErrCorrupt},
		{"other checksum", file, "", RestoreOptions{SHA256: fmt.Sprintf("%064d", 0)}, ErrCorrupt},
		{"not a backup", variant("text", []byte("hello")), "", RestoreOptions{}, ErrCorrupt},
	} {
		dir := tc.dir
		if dir == "" {
			dir = filepath.Join(t.TempDir(), "new")
		}
		_, err := Restore(context.Background(), tc.file, dir, tc.opts, hclog.NewNullLogger())
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.kind)
		}
		if tc.dir == "" {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: %s was created", tc.name, dir)
			}
		}
	}
	// The one-at-a-time rule.
	r := newRunner(t, srv)
	job, err := r.Prepare(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prepare(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("second backup: got %v, want ErrBusy", err)
	}
	job.Close()
	job, err = r.Prepare(context.Background())
	if err != nil {
		t.Fatalf("backup after the first closed: %v", err)
	}
	job.Close()
}
