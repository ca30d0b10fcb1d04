package eventlog

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Durable is group commit on one stream's files: After answers its callers
// once what they wrote (and JetStream acknowledged) is on disk. A worker
// takes every caller waiting, fsyncs once, and answers them; the callers
// that arrive meanwhile are taken by the next free worker at once, so an
// fsync's cost is shared by every write waiting for it, and writes are
// never held back to wait for company.
//
// A nil *Durable is os mode: it answers at once.
//
// After one fsync fails, every later caller is answered with that error:
// the kernel may have dropped the pages it could not write and report the
// next fsync as a success (the "fsyncgate" lesson of PostgreSQL), so
// nothing written since can be called durable. The node must restart.
type Durable struct {
	files  *StreamFiles
	log    hclog.Logger
	onSync func(writes int, took time.Duration)

	mu      sync.Mutex
	waiting []func(error)
	failed  error
	closed  bool
	wake    chan struct{}
	workers sync.WaitGroup
}

// syncWorkers is how many fsyncs may run at once. One: with two, the
// append-concurrency ladder (two runs each, alternating with one worker)
// lost 20-40% of its events/s from 16 clients up, and p50 rose at every
// step from 8 (1.54-1.66 ms against 1.49-1.57 at 8 clients): two fsyncs
// of half the writes cost the disk more than one of all of them.
const syncWorkers = 1

// NewDurable starts the group commit of files. onSync, if set, is told the
// number of writes each fsync made durable and how long it took; it runs on
// the syncing goroutine and must not block.
func NewDurable(files *StreamFiles, onSync func(writes int, took time.Duration), logger hclog.Logger) *Durable {
	d := &Durable{files: files, log: logger.Named("durable"), onSync: onSync, wake: make(chan struct{}, 1)}
	d.workers.Add(syncWorkers)
	for range syncWorkers {
		go d.run()
	}
	return d
}

// After calls done once every write acknowledged before the call is
// durable, or with the error that keeps it from being so. done runs on the
// syncing goroutine (or the caller's, when d is nil or failed), so it must
// not block.
func (d *Durable) After(done func(error)) {
	if d == nil {
		done(nil)
		return
	}
	d.mu.Lock()
	if d.failed != nil || d.closed {
		err := d.failed
		if err == nil {
			err = ErrClosed
		}
		d.mu.Unlock()
		done(err)
		return
	}
	d.waiting = append(d.waiting, done)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Wait blocks until every write acknowledged before the call is durable.
func (d *Durable) Wait(ctx context.Context) error {
	if d == nil {
		return nil
	}
	ch := make(chan error, 1)
	d.After(func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close answers the callers waiting, stops, and closes the files.
func (d *Durable) Close() error {
	if d == nil {
		return nil
	}
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.wake)
	}
	d.mu.Unlock()
	d.workers.Wait()
	return d.files.Close()
}

func (d *Durable) run() {
	defer d.workers.Done()
	for range d.wake {
		d.syncWaiting()
	}
	d.syncWaiting() // what came in with Close
}

// syncWaiting takes the callers waiting now, fsyncs, and answers them.
func (d *Durable) syncWaiting() {
	d.mu.Lock()
	batch := d.waiting
	d.waiting = nil
	failed := d.failed
	d.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	err := failed
	if err == nil {
		t0 := time.Now()
		if err = d.files.Sync(); err != nil {
			err = Unavailable("the log could not be made durable (restart the node): %v", err)
			d.log.Error("fsync failed; appends are refused until the node restarts", "error", err)
			d.mu.Lock()
			d.failed = err
			d.mu.Unlock()
		} else if d.onSync != nil {
			d.onSync(len(batch), time.Since(t0))
		}
	}
	for _, done := range batch {
		done(err)
	}
}
