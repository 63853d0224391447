package node

import (
	"sync"
	"time"
	_ "unsafe" // for go:linkname
)

// nats-server fixes its Raft timers in package variables with no option to
// change them: followers wait 4–9 s without a leader heartbeat (sent every
// 1 s) before electing a new leader, so losing the node that leads the
// history stream stalls publishing for up to about 10 s. ChatScalable runs
// its clusters on one site, where a shorter wait is safe, and promises that
// chat resumes within 5 s of losing a node; these links let a node set the
// timers before it starts. If nats-server renames them, the build fails at
// link time rather than silently keeping the defaults.

//go:linkname raftMinElectionTimeout github.com/nats-io/nats-server/v2/server.minElectionTimeout
var raftMinElectionTimeout time.Duration

//go:linkname raftMaxElectionTimeout github.com/nats-io/nats-server/v2/server.maxElectionTimeout
var raftMaxElectionTimeout time.Duration

//go:linkname raftHeartbeatInterval github.com/nats-io/nats-server/v2/server.hbInterval
var raftHeartbeatInterval time.Duration

var raftTuning sync.Once

// setElectionTimeout makes Raft followers elect a new leader after between
// d and 2d without a heartbeat, with heartbeats every d/6. It applies to
// the whole process and only once: the first node started decides.
func setElectionTimeout(d time.Duration) {
	raftTuning.Do(func() {
		raftMinElectionTimeout = d
		raftMaxElectionTimeout = 2 * d
		raftHeartbeatInterval = d / 6
	})
}
