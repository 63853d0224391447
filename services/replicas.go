package services

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketReplicas chooses the replication factor of a service's key-value
// bucket. want > 0 is taken as given. Otherwise it is 3 when the cluster
// has 3 or more servers (clusterSize, or when that is 0 the servers the
// connection knows of), else 1; and never less than the bucket already
// has: a replica that starts before it has learnt the whole cluster must
// not scale a replicated bucket down to one copy.
func BucketReplicas(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, bucket string, want, clusterSize int) int {
	return StreamReplicas(ctx, js, nc, "KV_"+bucket, want, clusterSize)
}

// StreamReplicas chooses the replication factor of a service's stream, as
// BucketReplicas does for a bucket (whose stream is KV_<bucket>).
func StreamReplicas(ctx context.Context, js jetstream.JetStream, nc *nats.Conn, stream string, want, clusterSize int) int {
	if want > 0 {
		return want
	}
	if clusterSize <= 0 {
		clusterSize = len(nc.Servers())
	}
	replicas := 1
	if clusterSize >= 3 {
		replicas = 3
	}
	if s, err := js.Stream(ctx, stream); err == nil {
		replicas = max(replicas, s.CachedInfo().Config.Replicas)
	}
	return replicas
}
