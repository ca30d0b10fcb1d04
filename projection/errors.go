package projection

import (
	"errors"

	"github.com/datamesh/datamesh/node/kind"
)

// Kinds of error the package returns where a caller branches. Each such
// error wraps one of them (errors.Is) and says in its message what
// happened; the API turns the kinds into its wire codes. Errors of no kind
// are internal failures.
var (
	// ErrNotFound: no projection, version or document by that name.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the request contradicts the state, such as retiring
	// the active version or changing a version's definition.
	ErrConflict = errors.New("conflict")
	// ErrNotReady: a version is not live yet (still building or failed).
	ErrNotReady = errors.New("not ready")
	// ErrInvalid: the request itself is malformed, such as a bad query or
	// a version applied twice in one request.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the SpecStore failed; a retry may succeed.
	ErrUnavailable = errors.New("unavailable")
)

// ErrNotUpToDate is returned when a query's min_seq was not reached in time.
var ErrNotUpToDate = errors.New("not up to date")

func kinded(k error, format string, args ...any) error { return kind.New(k, format, args...) }

func notFound(format string, args ...any) error    { return kinded(ErrNotFound, format, args...) }
func conflict(format string, args ...any) error    { return kinded(ErrConflict, format, args...) }
func unavailable(format string, args ...any) error { return kinded(ErrUnavailable, format, args...) }
func badQuery(format string, args ...any) error    { return kinded(ErrInvalid, format, args...) }
