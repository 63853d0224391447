// Command mercure is the Mercure.rocks hub (github.com/dunglas/mercure), a
// build of the Caddy web server with its Mercure module, which
// `make bench-peers` measures as a peer. It is a module of its own, outside
// the workspace, built with `make tools/bin/mercure`: the hub is published
// as a Caddy module, not as a command one can go install, and its
// checksums are pinned in this module's go.sum.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
	_ "github.com/dunglas/mercure/caddy"
)

func main() { caddycmd.Main() }
