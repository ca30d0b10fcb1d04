// Package console is the node's web console: a single-page application
// embedded in the binary (go:embed, no network at run time) and the small
// JSON API behind it, served under /ui/ on the node's HTTP port.
//
// Every figure the console shows comes through the API a service uses, on
// an in-process connection that signs in with the browser session's own
// identity (a service's name and password, or anonymous when the node has
// no services): the console can never show what that identity's grants
// would refuse, and a refused request reads "not allowed: <subject>".
//
// It is not an operator's back door: it holds no rights of its own, does
// not read the node's internals, and keeps no state but its sessions.
package console
