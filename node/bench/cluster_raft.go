package bench

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/datamesh/datamesh/node/embed"
)

// raftIndexes returns the last log index of every raft group of the node's
// account on server i. A replicated stream's group gains one index per
// append entry, whatever the number of messages the entry carries; with
// sync_always, every server writes and fsyncs each entry. So the events
// stored over a run, divided by the growth of their stream's index, is how
// many events JetStream replicated at a time: the figure that explains the
// cluster append ratio (docs/performance.md).
func raftIndexes(cl *cluster, i int) map[string]uint64 {
	out := map[string]uint64{}
	st := cl.nodes[i].Server().Raftz(&server.RaftzOptions{AccountFilter: embed.NodeAccount})
	if st == nil {
		return out
	}
	for _, groups := range *st {
		for id, g := range groups {
			out[id] = g.PIndex
		}
	}
	return out
}

// entriesSince is the largest growth of one group's index from before to
// after: the append entries of the one stream written in between.
func entriesSince(before, after map[string]uint64) uint64 {
	var most uint64
	for id, v := range after {
		if d := v - before[id]; v >= before[id] && d > most {
			most = d
		}
	}
	return most
}

// perEntry is events per append entry, 0 when nothing was counted.
func perEntry(events int, entries uint64) float64 {
	if entries == 0 {
		return 0
	}
	return float64(events) / float64(entries)
}
