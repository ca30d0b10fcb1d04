package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// ErrUnavailable is wrapped by Mount's error when this machine cannot
// mount a FUSE file system (no /dev/fuse, or no right to mount).
var ErrUnavailable = errors.New("FUSE is unavailable")

// unmountWait bounds how long Unmount waits for the kernel to end the
// mount after a lazy unmount (files still open).
const unmountWait = 10 * time.Second

// FS is a mounted lazy file system. Its methods are safe for concurrent use.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server
	crashed             atomic.Bool

	mu      sync.Mutex
	inodes  map[uint64]*inode // by backing inode number
	unmount sync.Once
	err     error
}

// Mount mounts a lazy file system at mountpoint, over the directory
// backing (one file system: inodes are known by their number). Call
// Unmount when done.
func Mount(backing, mountpoint string) (*FS, error) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("lazyfs: %w: %v", ErrUnavailable, err)
	}
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: backing dir: %w", err)
	}
	f := &FS{backing: backing, mountpoint: mountpoint, inodes: make(map[uint64]*inode)}
	// NewNode is deprecated for NodeWrapChilder, which would copy the
	// LoopbackNode (and the Inode it embeds) into ours; NewNode builds ours
	// in place. Kept while go-fuse has it.
	//lint:ignore SA1019 see above
	root := &fusefs.LoopbackRoot{Path: backing, Dev: st.Dev, NewNode: f.newNode}
	root.RootNode = f.newNode(root, nil, "", &st)
	f.server, err = fusefs.Mount(mountpoint, root.RootNode, &fusefs.Options{
		MountOptions: fuse.MountOptions{
			// There is no fusermount here: mount(2) directly, or fail.
			DirectMount:       true,
			DirectMountStrict: true,
			FsName:            "lazyfs:" + backing,
			Name:              "lazyfs",
		},
	})
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return nil, fmt.Errorf("lazyfs: mount %s: %w: %v (mounting needs root)", mountpoint, ErrUnavailable, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s: %w", mountpoint, err)
	}
	return f, nil
}

// MountTest mounts a lazy file system over backing at mountpoint for t,
// and unmounts it when t ends. It skips t if FUSE is unavailable here.
func MountTest(t testing.TB, backing, mountpoint string) *FS {
	t.Helper()
	f, err := Mount(backing, mountpoint)
	if errors.Is(err, ErrUnavailable) {
		t.Skipf("power-loss tests need FUSE: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount %s: %v", mountpoint, err)
		}
	})
	return f
}

// Mountpoint is where the file system is mounted.
func (f *FS) Mountpoint() string { return f.mountpoint }

// Crash drops every byte not yet fsynced, as a power loss would, and
// returns how many written bytes were dropped, by file (its path in the
// mount). From then on writes, fsyncs, truncates and the namespace
// changes fail with EIO, and Unmount writes nothing back. An fsync under
// way completes first. Stop the processes that write to the mount first.
func (f *FS) Crash() map[string]int64 {
	f.crashed.Store(true)
	lost := make(map[string]int64)
	for _, in := range f.snapshot() {
		in.syncMu.Lock()
		in.mu.Lock()
		if in.dirty {
			lost[in.path()] += in.written
		}
		in.clean()
		in.closeFD()
		in.mu.Unlock()
		in.syncMu.Unlock()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for ino, in := range f.inodes {
		in.gone = true
		delete(f.inodes, ino)
	}
	return lost
}

// Unsynced returns how many bytes were written to files and not fsynced.
func (f *FS) Unsynced() int64 {
	var n int64
	for _, in := range f.snapshot() {
		in.mu.Lock()
		n += in.written
		in.mu.Unlock()
	}
	return n
}

// Sync writes every file's pending data to the backing directory, as
// sync(2) would on a disk.
func (f *FS) Sync() error {
	var errs []error
	for _, in := range f.snapshot() {
		if err := in.sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", in.path(), err))
		}
	}
	return errors.Join(errs...)
}

// Unmount writes the pending data back (unless Crash came first), and
// unmounts the file system, lazily if files are still open; it then waits
// for the kernel to end the mount. It is safe to call twice.
func (f *FS) Unmount() error {
	f.unmount.Do(func() {
		var errs []error
		err := syscall.Unmount(f.mountpoint, 0)
		if errors.Is(err, syscall.EBUSY) {
			err = syscall.Unmount(f.mountpoint, syscall.MNT_DETACH)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("unmount: %w", err))
		} else {
			errs = append(errs, f.wait())
		}
		if !f.crashed.Load() { // the inodes keep their own descriptors
			errs = append(errs, f.Sync())
		}
		f.Crash() // close the descriptors; nothing is left to drop
		f.err = errors.Join(errs...)
	})
	return f.err
}

// wait waits until the kernel ends the mount (the last file closed).
func (f *FS) wait() error {
	done := make(chan struct{})
	go func() {
		f.server.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(unmountWait):
		return fmt.Errorf("files still open on %s after %v", f.mountpoint, unmountWait)
	}
}

// snapshot lists the inodes with pending data or open handles, in a
// stable order.
func (f *FS) snapshot() []*inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	inos := make([]uint64, 0, len(f.inodes))
	for ino := range f.inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	out := make([]*inode, len(inos))
	for i, ino := range inos {
		out[i] = f.inodes[ino]
	}
	return out
}

// acquire returns the inode of backing inode number ino, for a new open
// handle (or a truncate by path), with one more reference.
func (f *FS) acquire(ino uint64, path func() string) *inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	in, ok := f.inodes[ino]
	if !ok {
		in = newInode(&f.crashed, path)
		f.inodes[ino] = in
	}
	in.refs++
	return in
}

// release drops a reference; an inode with no handle and nothing
// pending is forgotten.
func (f *FS) release(ino uint64, in *inode) {
	f.mu.Lock()
	in.refs--
	last := in.refs == 0
	f.mu.Unlock()
	if !last {
		return
	}
	in.syncMu.Lock() // no write-back is using the descriptor
	defer in.syncMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.refs > 0 { // opened again meanwhile
		return
	}
	if in.gone {
		in.clean() // unlinked and closed: no one can read it again
	}
	if !in.dirty {
		in.closeFD()
		if f.inodes[ino] == in {
			delete(f.inodes, ino)
		}
	}
}

// find returns the inode of backing inode number ino, or nil.
func (f *FS) find(ino uint64) *inode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inodes[ino]
}

// forget drops the inode of an unlinked file: its number may be reused.
func (f *FS) forget(ino uint64) {
	f.mu.Lock()
	in, ok := f.inodes[ino]
	if ok {
		delete(f.inodes, ino)
		in.gone = true
	}
	idle := ok && in.refs == 0
	f.mu.Unlock()
	if !idle {
		return // the last handle's release drops the data
	}
	in.syncMu.Lock()
	defer in.syncMu.Unlock()
	in.mu.Lock()
	defer in.mu.Unlock()
	in.clean()
	in.closeFD()
}

// fixAttr puts the logical size of backing inode a.Ino in a.
func (f *FS) fixAttr(a *fuse.Attr) {
	if in := f.find(a.Ino); in != nil {
		in.mu.Lock()
		in.fixAttr(a)
		in.mu.Unlock()
	}
}
