// Package protocol is the node's public wire protocol: the subjects of the
// API (a NATS micro service named "datamesh"), the headers of an append,
// the JSON request and reply bodies, and the error codes of error replies.
// The API's handlers and node/client both import it, so the two sides
// cannot drift apart; docs/protocol.md describes the same for clients in
// other languages.
//
// It holds types and constants only: no behaviour beyond encoding. Types
// that a domain package produces (a projection's status, a link's) are
// aliases of that package's types.
package protocol
