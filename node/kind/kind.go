// Package kind makes the errors the domain packages return: an error of
// one kind (a sentinel the caller tests with errors.Is, such as
// projection.ErrNotFound) that reads as its own message alone, ready to be
// the message of an error reply, and may also wrap its cause. Each domain
// package declares its kinds; only the API maps them to wire codes.
package kind

import "fmt"

// Error is an error of kind Kind whose text is Msg.
type Error struct {
	Kind  error
	Msg   string
	Cause error // may be nil
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, and the cause if there is one.
func (e *Error) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Cause}
}

// New returns an error of kind k with a formatted message.
func New(k error, format string, args ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a formatted message that also wraps
// cause (errors.Is/As reach both).
func Wrap(k, cause error, format string, args ...any) error {
	return &Error{Kind: k, Cause: cause, Msg: fmt.Sprintf(format, args...)}
}
