// Package services holds the ChatScalable NATS micro services: presence
// (who is in which room, across every gateway) and the rooms directory.
// Each is a package with Start and Stop, run in-process by a quickstart
// gateway or on its own by its command (cmd/chat-presence, cmd/chat-rooms).
package services
