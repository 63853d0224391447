package rooms

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/chatscalable/chatscalable/broker"
	"github.com/nats-io/nats.go/jetstream"
)

// directory is the whole directory as computed at one version of the bus.
type directory struct {
	version [4]uint64
	rooms   []broker.RoomInfo
}

// cachedList returns the directory (see list), reusing the last one
// computed while the history stream and the topics bucket are unchanged:
// two cheap info requests instead of a scan of every room, so a client
// paging through a quiet directory, or many clients refreshing it, cost
// little. The slice is shared: callers copy what they change.
func (s *Service) cachedList(ctx context.Context) ([]broker.RoomInfo, error) {
	s.cacheMu.Lock()
	defer s.cacheMu.Unlock()
	version, err := s.version(ctx)
	if err != nil {
		return nil, err
	}
	if s.cache != nil && s.cache.version == version {
		return s.cache.rooms, nil
	}
	rooms, err := s.list(ctx)
	if err != nil {
		return nil, err
	}
	s.cache = &directory{version: version, rooms: rooms}
	return rooms, nil
}

// version tells whether the history stream or the topics bucket changed:
// their first and last sequences (expired messages move the first, new
// ones and topic writes and deletes the last).
func (s *Service) version(ctx context.Context) ([4]uint64, error) {
	var v [4]uint64
	stream, err := s.js.Stream(ctx, broker.StreamName)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		return v, fmt.Errorf("stream %s: %w", broker.StreamName, err)
	default:
		info, err := stream.Info(ctx)
		if err != nil {
			return v, fmt.Errorf("stream %s: %w", broker.StreamName, err)
		}
		// The creation time tells a recreated stream from the old one.
		v[0], v[1] = info.State.LastSeq, uint64(info.Created.UnixNano())^info.State.FirstSeq
	}
	st, err := s.kv.Status(ctx)
	if err != nil {
		return v, fmt.Errorf("topics bucket %s: %w", TopicsBucket, err)
	}
	if bs, ok := st.(*jetstream.KeyValueBucketStatus); ok && bs.StreamInfo() != nil {
		v[2], v[3] = bs.StreamInfo().State.LastSeq, bs.StreamInfo().State.FirstSeq
	}
	return v, nil
}

// list returns every room with messages, a topic or made private, most recently active
// first, without member counts.
func (s *Service) list(ctx context.Context) ([]broker.RoomInfo, error) {
	stats, err := s.hist.Rooms(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stats, err = nil, nil // no history yet: no room has messages
	}
	if err != nil {
		return nil, fmt.Errorf("room stats: %w", err)
	}
	topics, private, err := s.settings(ctx)
	if err != nil {
		return nil, err
	}
	byRoom := make(map[string]*broker.RoomInfo, len(stats)+len(topics)+len(private))
	get := func(room string) *broker.RoomInfo {
		if byRoom[room] == nil {
			byRoom[room] = &broker.RoomInfo{Room: room}
		}
		return byRoom[room]
	}
	for room, st := range stats {
		if st.Messages == 0 {
			continue
		}
		info := get(room)
		info.Messages = st.Messages
		info.LastActivity = timePtr(st.LastTime)
		info.LastSeq = st.LastSeq
	}
	for room, topic := range topics {
		get(room).Topic = topic
	}
	for room := range private {
		get(room).Private = true
	}
	out := make([]broker.RoomInfo, 0, len(byRoom))
	for _, info := range byRoom {
		out = append(out, *info)
	}
	sortRooms(out)
	return out, nil
}

// sortRooms orders rooms by last activity, newest first, rooms without
// activity last, then by name.
func sortRooms(rooms []broker.RoomInfo) {
	sort.Slice(rooms, func(i, j int) bool {
		a, b := rooms[i].LastActivity, rooms[j].LastActivity
		switch {
		case a != nil && b != nil && !a.Equal(*b):
			return a.After(*b)
		case a != nil && b == nil:
			return true
		case a == nil && b != nil:
			return false
		}
		return rooms[i].Room < rooms[j].Room
	})
}
