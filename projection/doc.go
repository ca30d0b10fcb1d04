// Package projection will fold the event log into BuntDB read models
// (declarative projections with indexes, queried by request-reply). It knows
// nothing of the node's API subjects. Not built yet: see the projections issue.
package projection
