package eventlog

import "strings"

// Subject is the stored subject of an event: <prefix>.<aggregate>.<id>.<type>.
func Subject(prefix, aggregate, id, typ string) string {
	return prefix + "." + aggregate + "." + id + "." + typ
}

// AggregateFilter is the wildcard over every event of one aggregate
// instance (<prefix>.<aggregate>.<id>.*), or of every instance when id is "".
func AggregateFilter(prefix, aggregate, id string) string {
	if id == "" {
		return prefix + "." + aggregate + ".>"
	}
	return prefix + "." + aggregate + "." + id + ".*"
}

// ParseSubject reads <prefix>.<aggregate>.<id>.<type>; ok is false for any
// other shape.
func ParseSubject(prefix, subject string) (aggregate, id, typ string, ok bool) {
	rest, found := strings.CutPrefix(subject, prefix+".")
	if !found {
		return "", "", "", false
	}
	aggregate, rest, found = strings.Cut(rest, ".")
	if !found {
		return "", "", "", false
	}
	id, typ, found = strings.Cut(rest, ".")
	if !found || strings.Contains(typ, ".") {
		return "", "", "", false
	}
	return aggregate, id, typ, true
}
