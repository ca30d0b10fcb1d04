// Package bench measures a DataMesh node's hot paths side by side with the
// raw building blocks (JetStream, BuntDB) in the same run, and reports each
// figure as a ratio to its raw counterpart, which stays meaningful on noisy,
// shared machines. `datamesh bench` prints what Run returns.
//
// It starts real nodes in temporary directories; it is not for production
// nodes.
package bench
