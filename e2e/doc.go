// Package e2e is the home of ChatScalable's system tests: tests that run
// the built commands as processes, clusters of them, the page in a real
// Chromium and the container deployments on a real Docker engine, and the
// harnesses they share. The product modules keep their unit tests next to
// their code; what tests the whole system from outside lives here, so the
// product modules link none of it.
//
//	proctest     build a command and run it as a process
//	ssetest      read a server-sent event stream
//	clustertest  clusters of chat-gateway and chat-broker processes
//	hoststest    clusters across network namespaces: partitions, latency, no loss
//	browsertest  the chat page in headless Chromium
//	dockertest   the compose project and the swarm stack
//	gateway      black-box tests of the gateway package's public API
//	commands     each command's flags, serving and stopping
//	guide        runs the runnable blocks of docs/guide and checks its links
package e2e
