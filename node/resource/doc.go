// Package resource applies a request's resources (YAML or JSON documents of
// the kinds EventType, Projection, Export and Link) to a node, all or none:
// every document is decoded and checked by its part before any is stored.
//
// It decodes and dispatches; the parts it is given decide and store (the
// registry for contracts, the projection manager, the mesh). It does not
// know the API's subjects.
package resource
