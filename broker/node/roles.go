package node

import (
	"fmt"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats-server/v2/server"
)

// Role is what a NATS client of a node may do. Each role is one user; every
// program of a kind shares it (all gateways are the user gateway).
type Role string

// The roles of the bus. No role may publish on chat.live.>,
// chat.presence.room.> or mercure.live.>: only the streams re-publish
// there, so what arrives on them carries positions the stream set, never a
// client's.
const (
	// RoleGateway is chat-gateway as a client of brokers: it publishes
	// messages (through JetStream) and its presence reports, keeps the
	// history stream, reads history with direct gets, asks the services,
	// watches the private rooms in the room settings bucket, stores and
	// reads Mercure updates, and listens to the live and presence subjects.
	RoleGateway Role = "gateway"
	// RoleService is chat-presence and chat-rooms: their micro service
	// endpoints, presence reports in, presence changes out (through the
	// presence stream), their own stream and bucket, and reading the
	// history stream's state for the directory.
	RoleService Role = "service"
	// RoleReader is a person with the nats CLI: subscribe to chat.room.>
	// and mercure.update.>, and read the history and Mercure streams
	// (their info and single messages), nothing else.
	RoleReader Role = "reader"
	// RoleAdmin may do everything: for operators (nats stream, nats micro,
	// nats server) and tests. Give it only to people.
	RoleAdmin Role = "admin"
)

// Roles lists the client roles, in the order flags and docs show them.
var Roles = []Role{RoleGateway, RoleService, RoleReader, RoleAdmin}

// RouteUser is the user name of routes, the connections between nodes.
const RouteUser = "route"

// jsAPI returns JetStream API subjects: $JS.API.<call> for each call.
func jsAPI(calls ...string) []string {
	out := make([]string, len(calls))
	for i, c := range calls {
		out[i] = "$JS.API." + c
	}
	return out
}

// permissions returns what role may publish and subscribe to; nil for
// the admin, who is not restricted.
func (r Role) permissions() (*server.Permissions, error) {
	rooms := broker.StreamName
	var pub, sub []string
	var responses *server.ResponsePermission
	switch r {
	case RoleGateway:
		settings, mercure := "KV_"+broker.RoomTopicsBucket, broker.MercureStream
		pub = append([]string{
			broker.RoomSubjectPrefix + "*",
			broker.PresenceReportPrefix + "*",
			broker.PresenceMembersSubject, broker.PresenceCountsSubject,
			broker.RoomsListSubject, broker.RoomsGetSubject, broker.RoomsTopicSubject,
			broker.RoomsPrivateSubject,
			// Flow control of the ordered consumer that watches the
			// private rooms in the settings bucket.
			"$JS.FC." + settings + ".>",
			// The Mercure hub's updates (stored through JetStream), and
			// the question for every gateway's subscribers.
			broker.MercureSubjectPrefix + "*.*",
			broker.MercureSubscriptionsSubject,
		}, jsAPI(
			"STREAM.INFO."+rooms, "STREAM.CREATE."+rooms, "STREAM.UPDATE."+rooms,
			"DIRECT.GET."+rooms,
			// The settings bucket: made when missing (which checks the
			// account's limits), then watched; never written.
			"INFO", "STREAM.INFO."+settings, "STREAM.CREATE."+settings,
			"CONSUMER.CREATE."+settings+".>", "CONSUMER.DELETE."+settings+".>",
			"STREAM.INFO."+mercure, "STREAM.CREATE."+mercure, "STREAM.UPDATE."+mercure,
			"DIRECT.GET."+mercure,
		)...)
		sub = []string{
			broker.LiveSubjectPrefix + "*",
			broker.MercureLivePrefix + "*.*",
			broker.MercureSubscriptionsSubject,
			broker.PresenceEventPrefix + "*",
			broker.PresenceSyncSubject,
			broker.GatewayInboxPrefix + ".>",
		}
		// A gateway answers another's question for its Mercure
		// subscribers, once.
		responses = &server.ResponsePermission{MaxMsgs: 1}
	case RoleService:
		presence, kv := broker.PresenceStream, "KV_"+broker.RoomTopicsBucket
		pub = append([]string{
			broker.PresenceSyncSubject,
			broker.PresenceAnnouncePrefix + "*",
			broker.PresenceCountsSubject,
			"$KV." + broker.RoomTopicsBucket + ".>",
			// Flow control of the ordered consumer that watches the topics.
			"$JS.FC." + kv + ".>",
		}, jsAPI(
			"INFO", // the account's limits, which making a bucket checks
			"STREAM.INFO."+presence, "STREAM.CREATE."+presence, "STREAM.UPDATE."+presence,
			"STREAM.INFO."+rooms, "DIRECT.GET."+rooms, "DIRECT.GET."+rooms+".>",
			"STREAM.INFO."+kv, "STREAM.CREATE."+kv, "STREAM.UPDATE."+kv,
			"DIRECT.GET."+kv+".>", "CONSUMER.CREATE."+kv+".>", "CONSUMER.DELETE."+kv+".>",
		)...)
		sub = []string{
			broker.PresenceReportPrefix + ">",
			broker.PresenceMembersSubject, broker.PresenceCountsSubject,
			broker.RoomsListSubject, broker.RoomsGetSubject, broker.RoomsTopicSubject,
			broker.RoomsPrivateSubject,
			"$SRV.>", // micro discovery: PING, INFO and STATS
			broker.ServiceInboxPrefix + ".>",
		}
		// Answers go to the requester's reply subject, once.
		responses = &server.ResponsePermission{MaxMsgs: 1}
	case RoleReader:
		mercure := broker.MercureStream
		pub = jsAPI("INFO", "STREAM.INFO."+rooms, "STREAM.MSG.GET."+rooms,
			"DIRECT.GET."+rooms, "DIRECT.GET."+rooms+".>",
			"STREAM.INFO."+mercure, "STREAM.MSG.GET."+mercure, "DIRECT.GET."+mercure, "DIRECT.GET."+mercure+".>")
		sub = []string{broker.RoomSubjectPrefix + ">", broker.MercureSubjectPrefix + ">", "_INBOX.>"}
	case RoleAdmin:
		return nil, nil
	default:
		return nil, fmt.Errorf("unknown role %q", r)
	}
	return &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: pub},
		Subscribe: &server.SubjectPermission{Allow: sub},
		Response:  responses,
	}, nil
}
