// Package expression is DataMesh's expression language: the small,
// side-effect-free expressions (expr-lang syntax) that resources carry as
// strings. Projections use it for their key and handlers, mesh links for
// their transforms. An expression sees one event (event.id, event.type,
// event.aggregate, event.event_id, event.source, event.time, event.seq), its
// decoded data, and for projection handlers the current document (doc); it
// may call merge, now (the event's time, so a replay folds the same way),
// delete and + on numbers, strings and arrays alike.
//
// It compiles and runs expressions and reports compile errors by the field
// they came from (FieldError). It is not for folding, storing or querying
// documents (package projection does that) nor for moving events between
// nodes (package meshlink): it knows neither stores nor subjects, and it
// never reads the clock or anything outside its arguments.
package expression
