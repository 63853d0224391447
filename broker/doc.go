// Package broker is the bus contract shared by every ChatScalable program:
// the subject scheme and room-name rules, the message envelope, and the
// JetStream stream that keeps each room's history. It depends on nats.go
// only; the embedded NATS server is package broker/node.
//
// Subjects:
//
//	chat.room.<room>  a room's messages; anything published here is stored
//	chat.live.<room>  the history stream re-publishes each stored message
//	                  here with its sequence (Nats-Sequence) and the
//	                  sequence of the room's previous message
//	                  (Nats-Last-Sequence), so live readers know positions
//	                  and can detect gaps
package broker
