//go:build !linux

package main

import (
	"context"
	"errors"
)

// epollSupported is false off Linux: every subscriber reads its stream in
// a goroutine of its own.
const epollSupported = false

// epollPool is Linux only; openSubscribers never makes one elsewhere.
type epollPool struct{}

func newEpollPool(context.Context, int) (*epollPool, error) {
	return nil, errors.New("epoll readers need Linux")
}

func (p *epollPool) add(int, *rawStream) error { return errors.New("epoll readers need Linux") }
