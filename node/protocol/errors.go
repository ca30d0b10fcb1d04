package protocol

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/datamesh/datamesh/schemas"
)

// Error codes carried in every error reply ({"error": {"code": ...}}) and, as
// the HTTP-like status, in the Nats-Service-Error-Code header.
const (
	CodeBadRequest          = "bad_request"          // 400: malformed subject, headers or body
	CodeNotFound            = "not_found"            // 404: nothing at that name
	CodeVersionConflict     = "version_conflict"     // 409: Dm-Expected-Version did not match
	CodeDuplicate           = "duplicate"            // 409: a batch repeats ids already stored differently
	CodeConflict            = "conflict"             // 409: a resource version exists with other content
	CodeIncompatible        = "incompatible"         // 409: a contract change breaks existing producers
	CodeNotReady            = "not_ready"            // 409: a projection version is not live yet
	CodeTooLarge            = "too_large"            // 413: event or batch above the node's limits
	CodeSchemaViolation     = "schema_violation"     // 422: data does not satisfy the contract
	CodeNoContract          = "no_contract"          // 422: contracts are mandatory and the type has none
	CodeNotUpToDate         = "not_up_to_date"       // 504: min_seq not reached in time
	CodeInternal            = "internal"             // 500: a bug; the message says what failed
	CodeUnavailable         = "unavailable"          // 503: the log did not answer in time
	CodeInsufficientStorage = "insufficient_storage" // 507: the log is at its storage limit; nothing stored
)

// statuses are the HTTP-like status of each code.
var statuses = map[string]int{
	CodeBadRequest: 400, CodeNotFound: 404, CodeVersionConflict: 409, CodeDuplicate: 409,
	CodeConflict: 409, CodeIncompatible: 409, CodeNotReady: 409, CodeTooLarge: 413,
	CodeSchemaViolation: 422, CodeNoContract: 422, CodeNotUpToDate: 504, CodeInternal: 500,
	CodeUnavailable: 503, CodeInsufficientStorage: 507,
}

// Error is an API error: the wire form of every failed request. It is also a
// Go error, so client code can errors.As a reply into it.
type Error struct {
	Code    string `json:"code"`
	Status  int    `json:"status"`
	Message string `json:"message"`
	// CurrentVersion is set on version_conflict: the aggregate's last seq (0: no events).
	CurrentVersion *uint64 `json:"current_version,omitempty"`
	// Violations is set on schema_violation: every failed rule with its JSON pointer.
	Violations []schemas.Violation `json:"violations,omitempty"`
	// Index is set when one event of a batch caused the error (0-based).
	Index *int `json:"index,omitempty"`
	// Reasons is set on incompatible: why the new contract version was refused.
	Reasons []string `json:"reasons,omitempty"`
	// Seq is set on not_up_to_date: the seq the projection has applied.
	Seq *uint64 `json:"seq,omitempty"`
}

// NewError returns an error with code, its status, and a message.
func NewError(code string, format string, args ...any) *Error {
	return &Error{Code: code, Status: statuses[code], Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// ErrorReply is the JSON body of an error reply.
type ErrorReply struct {
	Error *Error `json:"error"`
}

// Body returns the JSON error reply body.
func (e *Error) Body() []byte {
	b, _ := json.Marshal(ErrorReply{Error: e})
	return b
}

// StatusText is the status as the Nats-Service-Error-Code header carries it.
func (e *Error) StatusText() string { return strconv.Itoa(e.Status) }

// AtIndex marks e as caused by event i of a batch.
func (e *Error) AtIndex(i int) *Error {
	e.Index = &i
	e.Message = fmt.Sprintf("event %d: %s", i, e.Message)
	return e
}
