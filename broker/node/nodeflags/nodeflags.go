// Package nodeflags defines the command-line flags of who may connect to a
// NATS node, shared by chat-broker and chat-gateway (for its embedded node):
// a password file per client role and the routes' password file. Each file
// is read as its flag is parsed, so a file that cannot be read is a flag
// error.
package nodeflags

import (
	"fmt"

	"github.com/chatscalable/chatscalable/broker/envflag"
	"github.com/chatscalable/chatscalable/broker/node"
)

// roleUsage says what each role's clients are, for --help.
var roleUsage = map[node.Role]string{
	node.RoleGateway: "chat-gateway replicas (--nats-url)",
	node.RoleService: "chat-presence and chat-rooms",
	node.RoleReader:  "read-only nats CLI users: subscribe to chat.room.> and read history",
	node.RoleAdmin:   "operators, with every right",
}

// AddAuth defines --<role>-password-file for each role and
// --cluster-password-file, filling a as they are parsed. of names the
// node in the usage text ("this broker", "the embedded node").
func AddAuth(fs *envflag.Set, a *node.Auth, of string) {
	for _, role := range node.Roles {
		fs.SecretFile(string(role)+"-password-file",
			fmt.Sprintf("`file` holding the password of the user %q, for %s; clients of %s log in as it (e.g. a Docker secret; may hold a bcrypt hash)", role, roleUsage[role], of),
			func(p string) {
				if a.Passwords == nil {
					a.Passwords = map[node.Role]string{}
				}
				a.Passwords[role] = p
			})
	}
	fs.SecretFile("cluster-password-file",
		fmt.Sprintf("`file` holding the routes' password (user %q), the same on every node of the cluster; %s requires it of the nodes that join it and presents it to those it joins", node.RouteUser, of),
		func(p string) { a.RoutePassword = p })
}
