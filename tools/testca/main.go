// Command testca makes a test certificate authority and the certificates of
// a NATS cluster for local use: a node certificate (the brokers' client and
// route listeners) and a client certificate (gateways and services).
//
//	go run ./tools/testca --dir build/secrets --hosts broker-1,broker-2,broker-3,localhost,127.0.0.1
//
// Not for production: the CA's key is written beside the certificates.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/chatscalable/chatscalable/broker/testca"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("testca", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "", "folder to write ca.pem, ca-key.pem, node.pem, node-key.pem, client.pem and client-key.pem to (made if missing)")
	hosts := fs.String("hosts", "localhost,127.0.0.1,::1", "comma-separated DNS names and IP addresses the node certificate is valid for: every name clients and routes use to reach a node")
	days := fs.Int("days", 365, "days the certificates are valid")
	force := fs.Bool("force", false, "replace certificates that are already there")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "testca makes a test CA and NATS node and client certificates for local use (not for production).\n\nUsage: testca --dir DIR [flags]\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var list []string
	for _, h := range strings.Split(*hosts, ",") {
		if h = strings.TrimSpace(h); h != "" {
			list = append(list, h)
		}
	}
	switch {
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "testca: unexpected argument %q\n", fs.Arg(0))
		return 2
	case *dir == "":
		fmt.Fprintln(stderr, "testca: --dir is required")
		return 2
	case len(list) == 0:
		fmt.Fprintln(stderr, "testca: --hosts names no host")
		return 2
	case *days < 1 || *days > 3650:
		fmt.Fprintln(stderr, "testca: --days must be from 1 to 3650")
		return 2
	}
	f, err := testca.Write(*dir, list, time.Duration(*days)*24*time.Hour, *force)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "test CA %s (key %s)\nnode certificate %s (key %s) for %s\nclient certificate %s (key %s)\n",
		f.CA, f.CAKey, f.NodeCert, f.NodeKey, strings.Join(list, ", "), f.ClientCert, f.ClientKey)
	return 0
}
