package protocol

// SubjectBackup streams a backup of the node to the request's reply
// subject, with flow control (docs/backup.md). The request's body is an
// optional BackupRequest.
const SubjectBackup = "dm.admin.backup"

// Headers of the messages a backup sends to the request's reply subject.
// A message with the micro error headers (Nats-Service-Error-Code) is an
// error reply (ErrorReply body) that ends the backup; any other carries
// HeaderBackup.
const (
	// HeaderBackup says what a message is: BackupMsgBegin, BackupMsgChunk
	// or BackupMsgEnd.
	HeaderBackup = "Dm-Backup"
	// HeaderBackupSeq numbers the chunks from 1.
	HeaderBackupSeq = "Dm-Backup-Seq"
)

// Values of HeaderBackup.
const (
	// BackupMsgBegin is the first message: a BackupBegin.
	BackupMsgBegin = "begin"
	// BackupMsgChunk is the next bytes of the backup file. Its reply
	// subject is where the client acknowledges it (any body), once the
	// bytes are written: the node sends at most window chunks ahead of the
	// acknowledgements.
	BackupMsgChunk = "chunk"
	// BackupMsgEnd is the last message: a BackupEnd, sent once every chunk
	// is acknowledged.
	BackupMsgEnd = "end"
)

// Bounds of a BackupRequest.
const (
	BackupDefaultChunk  = 128 * 1024
	BackupMinChunk      = 1024
	BackupMaxChunk      = 512 * 1024
	BackupDefaultWindow = 8
	BackupMaxWindow     = 64
)

// BackupRequest is the optional body of a backup request.
type BackupRequest struct {
	// ChunkSize is the most bytes a chunk carries (default 128 KiB, 1 KiB
	// to 512 KiB).
	ChunkSize int `json:"chunk_size,omitempty"`
	// Window is how many chunks may be unacknowledged (default 8, at most 64).
	Window int `json:"window,omitempty"`
}

// BackupStream is one stream of a backup and what it holds.
type BackupStream struct {
	Account  string `json:"account"`
	Stream   string `json:"stream"`
	Messages uint64 `json:"messages"`
	Bytes    uint64 `json:"bytes"`
	FirstSeq uint64 `json:"first_seq"`
	LastSeq  uint64 `json:"last_seq"`
}

// BackupBegin is the first message of a backup: what it will hold, as the
// streams are when it starts (each grows until its snapshot is taken).
type BackupBegin struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	// Format is the backup file's layout (datamesh-backup/1).
	Format    string         `json:"format"`
	ChunkSize int            `json:"chunk_size"`
	Window    int            `json:"window"`
	Streams   []BackupStream `json:"streams"`
}

// BackupEnd is the last message of a backup: the file's size and SHA-256,
// which the client checks against what it received, and each stream as it
// was snapshotted.
type BackupEnd struct {
	Size    int64          `json:"size"`
	SHA256  string         `json:"sha256"`
	Chunks  uint64         `json:"chunks"`
	Streams []BackupStream `json:"streams"`
}
