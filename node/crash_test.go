package node_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// The crash test's shape: rounds, and in each the owner's load (clients
// on few connections, many appends in flight on each) and the number of
// acks after which the round's victim is killed (at most crashMaxAcks).
const (
	crashRounds  = 12
	crashConns   = 4
	crashPerConn = 16
	crashMaxAcks = 600
	crashLink    = "orders-in"
)

// crashShape is the number of rounds and the most acks per round: under
// the race detector 10 rounds (the minimum) of smaller loads, as
// the checks after each round read the logs whole.
func crashShape() (rounds int, maxAcks int64) {
	if raceEnabled {
		return 10, 150
	}
	return crashRounds, crashMaxAcks
}

// TestCrashUnderLoadRepeated kills separate node processes with SIGKILL
// at random moments, round after round: an owner ("orders", in fsync
// mode) takes pipelined appends and exports every event to a recipient
// ("billing") that links it, and each node runs the tally projection
// (v1, live since the start). In each round a new version of the tally
// is applied on the round's victim during the load (a rebuild, crashed),
// then the victim, the owner or the recipient in turn, is SIGKILLed after
// a random number of acks and restarted. After each round: every
// acknowledged append is in the owner's log exactly once; every tally
// version equals, document by document, a fold of its node's log; the
// recipient's log is the owner's, each event once by origin seq.
func TestCrashUnderLoadRepeated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills node processes")
	}
	rng := testRand(t)
	start := time.Now()
	leaf := freeLeafListen(t)
	owner := newCrashNode(t, "orders", leaf, "billing")
	recipient := newCrashNode(t, "billing", "", "orders")
	apply(t, owner.c, "kind: Export\nname: all-events\nto: [billing]\naggregates: [order, stock]\n---\n"+tallyYAML(1))
	apply(t, recipient.c, fmt.Sprintf("kind: Link\nname: %s\npeer: orders\nurl: nats-leaf://%s\nexport: all-events\n---\n%s",
		crashLink, leaf, tallyYAML(1)))
	t.Logf("nodes up in %v", time.Since(start).Round(time.Millisecond))
	var acked []ackedEvent
	var ownerLog, recipientLog logCache
	rounds, _ := crashShape()
	for round := 1; round <= rounds; round++ {
		began := time.Now()
		victim := owner
		if round%2 == 0 {
			victim = recipient
		}
		acked = append(acked, crashRound(t, rng, round, owner, victim)...)
		restart := time.Now()
		victim.start()
		t.Logf("round %d: %s restarted in %v", round, victim.name, time.Since(restart).Round(time.Millisecond))
		checkCrashRound(t, round, owner, recipient, victim, acked, &ownerLog, &recipientLog)
		if t.Failed() {
			return
		}
		t.Logf("round %d: checked in %v (%d acks in all)", round, time.Since(began).Round(time.Millisecond), len(acked))
	}
	sameLog(t, owner.name, owner.nc, &ownerLog)
	sameLog(t, recipient.name, recipient.nc, &recipientLog)
	t.Logf("%d rounds, %d acknowledged appends, in %v", rounds, len(acked), time.Since(start).Round(time.Millisecond))
}

// crashRound runs the owner's load, applies the round's tally version on
// the victim after a random number of acks, SIGKILLs the victim after a
// random larger number and stops the load. It returns the acks.
func crashRound(t *testing.T, rng *rand.Rand, round int, owner, victim *crashNode) []ackedEvent {
	t.Helper()
	_, maxAcks := crashShape()
	killAt := 20 + rng.Int64N(maxAcks)
	applyAt := rng.Int64N(killAt)
	load := startPipelinedLoad(t, owner.p.url, round, crashConns, crashPerConn)
	load.waitAcks(t, applyAt)
	apply(t, victim.c, tallyYAML(round+1))
	load.waitAcks(t, killAt)
	if victim == owner {
		load.stopping.Store(true)
	}
	victim.kill()
	acked := load.stop(t)
	t.Logf("round %d: tally v%d applied on %s after %d acks, SIGKILL after %d; %d acks", round, round+1, victim.name, applyAt, killAt, len(acked))
	return acked
}

// checkCrashRound checks the owner's log against every ack, the link's
// import against the owner's log, and each node's tally versions against
// its log; then it retires the round's version.
func checkCrashRound(t *testing.T, round int, owner, recipient, victim *crashNode, acked []ackedEvent, ownerLog, recipientLog *logCache) {
	t.Helper()
	owned := ownerLog.refresh(t, owner.nc)
	if r := compareLog(owned, acked); r.lost() {
		t.Errorf("round %d: acknowledged appends lost or stored twice: %v", round, r)
	}
	head := lastSeq(owned)
	linkWait := time.Now()
	waitLink(t, recipient, crashLink, head)
	t.Logf("round %d: the link caught up with the owner (seq %d) in %v", round, head, time.Since(linkWait).Round(time.Millisecond))
	imported := recipientLog.refresh(t, recipient.nc)
	checkImport(t, owner.name, crashLink, owned, imported)
	for _, n := range []*crashNode{owner, recipient} {
		log, versions := owned, []int{1}
		if n == recipient {
			log = imported
		}
		if n == victim {
			versions = append(versions, round+1)
		}
		checkTally(t, n.c, log, versions...)
	}
	if _, err := victim.c.Retire(tallyName, round+1); err != nil {
		t.Errorf("retire tally v%d on %s: %v", round+1, victim.name, err)
	}
}
