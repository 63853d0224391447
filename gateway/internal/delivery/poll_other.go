//go:build !linux

package delivery

import "errors"

const pollSupported = false

// poller is Linux-only; elsewhere New fails and the gateway keeps each
// stream on its net/http handler goroutine.
type poller struct{}

func newPoller(*Loop) (*poller, error) {
	return nil, errors.New("stream loop: not supported on this platform")
}

func (*poller) add(*Stream) error { return errors.New("not supported") }
func (*poller) remove(*Stream)    {}
func (*poller) run() error        { return nil }
func (*poller) close()            {}

func setSendBuffer(int, int) error { return nil }

func writeNonBlocking(int, []byte) (int, error) { return 0, errors.New("not supported") }
