//go:build race

package node_test

// raceEnabled: the race detector slows the node about five times; the
// heaviest tests run smaller (never fewer rounds than they promise).
const raceEnabled = true
