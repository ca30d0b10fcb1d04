// Package tlsgen makes the TLS material of a mesh with Go's crypto: one
// certificate authority, a certificate for each node (its client, leaf
// and HTTP ports, and its links to peers) and one for each service that
// signs in by certificate (tls.map). `datamesh keys tls` and the tests use
// it; nothing is downloaded and no external tool is needed.
//
// It is not a certificate manager: no revocation, no renewal schedule, no
// OCSP. A production mesh may use any CA; this one is for getting
// started, for tests and for meshes whose operators want nothing more.
package tlsgen
