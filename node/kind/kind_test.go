package kind_test

import (
	"errors"
	"io/fs"
	"testing"

	"github.com/datamesh/datamesh/node/kind"
)

var errNotFound = errors.New("not found")

func TestAnErrorReadsAsItsMessageAndIsItsKind(t *testing.T) {
	err := kind.New(errNotFound, "no projection %q", "orders")
	if err.Error() != `no projection "orders"` || !errors.Is(err, errNotFound) {
		t.Fatalf("got %q (is kind: %v), want the message alone and the kind", err, errors.Is(err, errNotFound))
	}
	wrapped := kind.Wrap(errNotFound, fs.ErrPermission, "store: %v", fs.ErrPermission)
	if !errors.Is(wrapped, errNotFound) || !errors.Is(wrapped, fs.ErrPermission) {
		t.Fatalf("%v: want both the kind and the cause", wrapped)
	}
	if errors.Is(kind.Wrap(errNotFound, nil, "x"), fs.ErrPermission) {
		t.Fatal("a nil cause matched")
	}
}
