package backup

import (
	"errors"
	"fmt"
)

// Kinds of error the package returns (errors.Is); the API maps them to
// wire codes.
var (
	// ErrBusy: a backup is under way already; one runs at a time.
	ErrBusy = errors.New("backup busy")
	// ErrInvalid: a request or a target the package refuses (a data
	// directory that is not empty).
	ErrInvalid = errors.New("invalid backup request")
	// ErrCorrupt: a backup file is not a whole, unchanged backup.
	ErrCorrupt = errors.New("corrupt backup")
	// ErrUnavailable: the node is shutting down, or JetStream did not answer.
	ErrUnavailable = errors.New("backup unavailable")
)

// kindError is an error of one kind with its own message; it may also
// wrap its cause.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() []error {
	if e.cause == nil {
		return []error{e.kind}
	}
	return []error{e.kind, e.cause}
}

func kinded(kind, cause error, format string, args ...any) error {
	return &kindError{kind: kind, cause: cause, msg: fmt.Sprintf(format, args...)}
}

func corrupt(format string, args ...any) error { return kinded(ErrCorrupt, nil, format, args...) }
