package backup

import (
	"errors"

	"github.com/datamesh/datamesh/node/kind"
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
	// ErrNotEmpty: a restore into a running node that already holds
	// events, resources or link state, or into which another restore runs
	// or was cut short.
	ErrNotEmpty = errors.New("node not empty")
)

func kinded(k, cause error, format string, args ...any) error {
	return kind.Wrap(k, cause, format, args...)
}

func corrupt(format string, args ...any) error { return kinded(ErrCorrupt, nil, format, args...) }
