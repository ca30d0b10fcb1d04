package protocol

// SubjectRestore restores a backup into a running clustered node whose log
// and registry are empty: the way a standalone node moves into a cluster
// (docs/cluster.md). The request's body is a RestoreRequest; the reply a
// RestoreReady that names where the backup file goes, chunk by chunk.
const SubjectRestore = "dm.admin.restore"

// HeaderRestoreSeq numbers the chunks a client sends to
// RestoreReady.Subject, from 1.
const HeaderRestoreSeq = "Dm-Restore-Seq"

// Bounds of a restore upload.
const (
	// RestoreChunk is the most bytes one chunk carries.
	RestoreChunk = 128 * 1024
	// RestoreIdleSeconds is how long the node waits for the next chunk
	// before it gives the restore up.
	RestoreIdleSeconds = 30
)

// RestoreRequest announces the backup file a client is about to send.
type RestoreRequest struct {
	// Size and SHA256 are the whole file's: the node refuses a file that
	// arrives otherwise.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// RestoreReady is the reply to a RestoreRequest: the server that restores,
// and the subject the client sends the file to. Each chunk is a request
// (header HeaderRestoreSeq) answered with an empty body once written, or
// with an error reply that ends the restore; an empty message ends the
// file and is answered with a RestoreEnd (or an error) once the node holds
// the backup, which can take minutes for a large log.
type RestoreReady struct {
	Server    string `json:"server"`
	Subject   string `json:"subject"`
	ChunkSize int    `json:"chunk_size"`
}

// RestoreEnd says what a restore restored.
type RestoreEnd struct {
	Node   string `json:"node"`
	Server string `json:"server"`
	// Created is when the backup was taken (RFC 3339).
	Created string `json:"created"`
	// Version is the DataMesh version that took the backup.
	Version string `json:"version"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	// Streams are the streams restored through JetStream's restore API
	// (the log and the export streams), with the replica count they now
	// have; Buckets the KV buckets, whose keys were written again.
	Streams []BackupStream  `json:"streams"`
	Buckets []RestoreBucket `json:"buckets"`
	// Replicas of the restored streams.
	Replicas int `json:"replicas"`
}

// RestoreBucket is a KV bucket of a restore and how many keys it got.
type RestoreBucket struct {
	Bucket string `json:"bucket"`
	Keys   int    `json:"keys"`
}
