package eventlog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/datamesh/datamesh/node/kind"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Kinds of error the log returns. Each error the log returns wraps one of
// them (errors.Is) and says in its message what happened; the API maps the
// kinds to wire codes.
var (
	// ErrInvalid: the event breaks a rule that needs no contract.
	ErrInvalid = errors.New("invalid event")
	// ErrTooLarge: the event or batch is above the node's limits.
	ErrTooLarge = errors.New("too large")
	// ErrNoContract: contracts are required and the event type has none.
	ErrNoContract = errors.New("no contract")
	// ErrDuplicateBatch: some ids of a batch are stored, but not as this batch.
	ErrDuplicateBatch = errors.New("duplicate batch")
	// ErrUnavailable: the log did not store or answer; the write may be
	// stored (a retry with the same ce-id is safe).
	ErrUnavailable = errors.New("event log unavailable")
	// ErrStorageFull: storing the write would exceed the log's storage
	// limit (max_log_bytes) or JetStream's; nothing was stored.
	ErrStorageFull = errors.New("insufficient storage")
	// ErrClosed: the log is closing.
	ErrClosed = errors.New("the node is shutting down")
)

func kinded(k error, format string, args ...any) error { return kind.New(k, format, args...) }

func invalid(format string, args ...any) error  { return kinded(ErrInvalid, format, args...) }
func tooLarge(format string, args ...any) error { return kinded(ErrTooLarge, format, args...) }

// Unavailable is an ErrUnavailable error with a message.
func Unavailable(format string, args ...any) error { return kinded(ErrUnavailable, format, args...) }

// VersionConflictError says an expected version did not hold.
type VersionConflictError struct {
	// Expected is the version the writer expected; nil if unknown.
	Expected *uint64
	// Current is the aggregate's last seq (0: no events), valid when Expected is set.
	Current uint64
	// Description is JetStream's, when the versions could not be read.
	Description string
}

func (e *VersionConflictError) Error() string {
	if e.Expected == nil {
		return e.Description
	}
	return fmt.Sprintf("expected version %d, but the aggregate is at version %d", *e.Expected, e.Current)
}

// errCodeBatchDuplicate is JSAtomicPublishContainsDuplicateMessageErr.
const errCodeBatchDuplicate = 10201

// isBatchDuplicate reports whether JetStream refused a batch for ids it holds.
func isBatchDuplicate(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeBatchDuplicate
}

// JetStream's codes of a write refused for lack of room: JSInsufficientResourcesErr
// (the server's or account's storage), and JSStreamStoreFailedF, whose
// description says "maximum bytes exceeded" at the stream's max_bytes.
const (
	errCodeInsufficientResources = 10023
	errCodeStoreFailed           = 10077
)

// storageFull is an ErrStorageFull error with JetStream's reason.
func storageFull(reason string) error {
	return kinded(ErrStorageFull, "the event log is full (%s): nothing was stored; raise max_log_bytes or free disk space", reason)
}

// publishError maps a JetStream publish failure to one of the log's errors.
func publishError(err error, expected *uint64) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode {
		case jetstream.JSErrCodeStreamWrongLastSequence, jetstream.JSErrCodeStreamWrongLastSequenceConstant:
			cur, perr := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(apiErr.Description, "wrong last sequence:")), 10, 64)
			if expected != nil && perr == nil {
				return &VersionConflictError{Expected: expected, Current: cur}
			}
			return &VersionConflictError{Description: apiErr.Description}
		case 10054: // JSStreamMessageExceedsMaximumErr
			return tooLarge("%s", apiErr.Description)
		case 10199: // JSAtomicPublishTooLargeBatchErrF
			return tooLarge("%s", apiErr.Description)
		case errCodeInsufficientResources:
			return storageFull(apiErr.Description)
		case errCodeStoreFailed:
			if strings.Contains(apiErr.Description, "maximum bytes exceeded") {
				return storageFull(apiErr.Description)
			}
		}
		return Unavailable("event log refused the write: %s", apiErr.Description)
	}
	if errors.Is(err, jetstream.ErrAsyncPublishTimeout) || errors.Is(err, nats.ErrTimeout) {
		return Unavailable("event log did not acknowledge in time; the event may be stored: retry with the same ce-id")
	}
	return Unavailable("event log: %v", err)
}
