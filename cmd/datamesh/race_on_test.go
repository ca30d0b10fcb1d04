//go:build race

package main

// raceEnabled: the race detector slows the node processes several times;
// the heaviest tests run smaller.
const raceEnabled = true
