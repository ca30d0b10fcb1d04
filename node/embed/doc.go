// Package embed runs the nats-server that a DataMesh node is: it turns the
// node's settings into server options (accounts, users and their
// permissions, the leafnode port, and later cluster and TLS settings),
// starts the server, waits until it is ready, reloads it when the mesh
// changes its leafnode remotes, and opens the node's in-process connections
// with the rights of each account.
//
// It is not where the log, the registry or the API live: it knows their
// subjects and bucket names only to grant or deny them to services and peers.
package embed
