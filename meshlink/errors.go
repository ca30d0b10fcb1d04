package meshlink

import (
	"errors"

	"github.com/datamesh/datamesh/node/kind"
)

// Kinds of error the mesh returns. Each error of the mesh's own wraps one
// of them (errors.Is) and says in its message what happened; the API maps
// the kinds to wire codes. An error of none of these kinds is a failure of
// the mesh itself (or, from Replay, one of the Log's own errors).
var (
	// ErrNotFound: no export, link or dead letter by that name.
	ErrNotFound = errors.New("not found")
	// ErrInvalid: a resource or a request breaks a rule of the mesh.
	ErrInvalid = errors.New("invalid")
	// ErrUnavailable: the store, the server or a peer did not do what was
	// asked; trying again may succeed.
	ErrUnavailable = errors.New("unavailable")
)

func kinded(k error, format string, args ...any) error { return kind.New(k, format, args...) }

func notFound(format string, args ...any) error    { return kinded(ErrNotFound, format, args...) }
func invalid(format string, args ...any) error     { return kinded(ErrInvalid, format, args...) }
func unavailable(format string, args ...any) error { return kinded(ErrUnavailable, format, args...) }
