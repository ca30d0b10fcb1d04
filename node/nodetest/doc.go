// Package nodetest holds what tests and benchmarks share to wait on real
// nodes: polling a condition with a deadline, never sleeping for a fixed
// time (nats-server's checkFor is the model). It is for tests and the
// benchmark, not for production code.
package nodetest
