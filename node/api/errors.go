package api

import (
	"errors"

	"github.com/datamesh/datamesh/meshlink"
	"github.com/datamesh/datamesh/node/backup"
	"github.com/datamesh/datamesh/node/eventlog"
	"github.com/datamesh/datamesh/node/protocol"
	"github.com/datamesh/datamesh/node/registry"
	"github.com/datamesh/datamesh/node/rejected"
	"github.com/datamesh/datamesh/node/resource"
	"github.com/datamesh/datamesh/projection"
	"github.com/datamesh/datamesh/schemas"
)

// codes maps the domain packages' error kinds to wire codes. It is the one
// place where that happens: the domain packages return typed errors
// (errors.Is/As), and their messages become the reply's message unchanged.
var codes = []struct {
	kind error
	code string
}{
	{eventlog.ErrInvalid, protocol.CodeBadRequest},
	{eventlog.ErrTooLarge, protocol.CodeTooLarge},
	{eventlog.ErrNoContract, protocol.CodeNoContract},
	{eventlog.ErrDuplicateBatch, protocol.CodeDuplicate},
	{eventlog.ErrUnavailable, protocol.CodeUnavailable},
	{eventlog.ErrStorageFull, protocol.CodeInsufficientStorage},
	{eventlog.ErrClosed, protocol.CodeUnavailable},
	{registry.ErrConflict, protocol.CodeConflict},
	{registry.ErrIncompatible, protocol.CodeIncompatible},
	{registry.ErrInvalid, protocol.CodeBadRequest},
	{registry.ErrUnavailable, protocol.CodeUnavailable},
	{projection.ErrNotFound, protocol.CodeNotFound},
	{projection.ErrConflict, protocol.CodeConflict},
	{projection.ErrNotReady, protocol.CodeNotReady},
	{projection.ErrInvalid, protocol.CodeBadRequest},
	{projection.ErrUnavailable, protocol.CodeUnavailable},
	{projection.ErrNotUpToDate, protocol.CodeNotUpToDate},
	{meshlink.ErrNotFound, protocol.CodeNotFound},
	{meshlink.ErrInvalid, protocol.CodeBadRequest},
	{meshlink.ErrUnavailable, protocol.CodeUnavailable},
	{resource.ErrInvalid, protocol.CodeBadRequest},
	{backup.ErrBusy, protocol.CodeConflict},
	{backup.ErrInvalid, protocol.CodeBadRequest},
	{backup.ErrUnavailable, protocol.CodeUnavailable},
	{rejected.ErrNotFound, protocol.CodeNotFound},
	{rejected.ErrUnavailable, protocol.CodeUnavailable},
}

// WireError turns any error of the node into the error reply that says it.
// The node uses it for the errors of its Go API too.
func WireError(err error) *protocol.Error {
	var we *protocol.Error
	if errors.As(err, &we) {
		return we
	}
	var conflict *eventlog.VersionConflictError
	if errors.As(err, &conflict) {
		e := protocol.NewError(protocol.CodeVersionConflict, "%s", conflict.Error())
		if conflict.Expected != nil {
			e.CurrentVersion = &conflict.Current
		}
		return e
	}
	var violation *schemas.ViolationError
	if errors.As(err, &violation) {
		e := protocol.NewError(protocol.CodeSchemaViolation, "%s", violation.Error())
		e.Violations = violation.Violations
		return e
	}
	for _, c := range codes {
		if errors.Is(err, c.kind) {
			e := protocol.NewError(c.code, "%s", err.Error())
			var inc *schemas.IncompatibleError
			if c.code == protocol.CodeIncompatible && errors.As(err, &inc) {
				e.Reasons = inc.Reasons
			}
			return e
		}
	}
	return protocol.NewError(protocol.CodeInternal, "%s", err.Error())
}
