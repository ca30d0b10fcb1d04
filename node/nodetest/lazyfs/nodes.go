package lazyfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a file or directory of the mount: go-fuse's loopback node, with
// the data operations and the size in attributes going through the page
// cache, and the namespace changes fenced after a crash.
type node struct {
	fusefs.LoopbackNode
	fs *FS
}

var (
	_ fusefs.NodeLookuper  = (*node)(nil)
	_ fusefs.NodeGetattrer = (*node)(nil)
	_ fusefs.NodeSetattrer = (*node)(nil)
	_ fusefs.NodeOpener    = (*node)(nil)
	_ fusefs.NodeCreater   = (*node)(nil)
	_ fusefs.NodeUnlinker  = (*node)(nil)
	_ fusefs.NodeRenamer   = (*node)(nil)
	_ fusefs.NodeMkdirer   = (*node)(nil)
	_ fusefs.NodeRmdirer   = (*node)(nil)
)

func (f *FS) newNode(root *fusefs.LoopbackRoot, _ *fusefs.Inode, _ string, _ *syscall.Stat_t) fusefs.InodeEmbedder {
	return &node{LoopbackNode: fusefs.LoopbackNode{RootData: root}, fs: f}
}

// openFlags are the open flags the backing file is not opened with: the
// page cache does appends (at the offsets the kernel gives), truncates
// and synchronous writes itself.
const openFlags = syscall.O_APPEND | syscall.O_TRUNC | syscall.O_SYNC | syscall.O_DSYNC | syscall.O_DIRECT | fuse.FMODE_EXEC

// backingPath is the node's path in the backing directory.
func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(nil))
}

func (n *node) relPath() string { return n.Path(nil) }

func (n *node) dead() bool { return n.fs.crashed.Load() }

// Lookup reports the logical size of a file with pending data.
func (n *node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Lookup(ctx, name, out)
	if errno == 0 {
		n.fs.fixAttr(&out.Attr)
	}
	return ch, errno
}

// Getattr reports the logical size of a file with pending data.
func (n *node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Getattr(ctx, out)
	}
	errno := n.LoopbackNode.Getattr(ctx, nil, out)
	if errno == 0 {
		n.fs.fixAttr(&out.Attr)
	}
	return errno
}

// Setattr truncates in the page cache; the other attributes go to the
// backing file at once.
func (n *node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.dead() {
		return syscall.EIO
	}
	h, _ := f.(*handle)
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(h, int64(size)); errno != 0 {
			return errno
		}
	}
	rest := *in
	rest.Valid &^= fuse.FATTR_SIZE | fuse.FATTR_FH
	if h != nil {
		if errno := h.lf.Setattr(ctx, &rest, out); errno != 0 {
			return errno
		}
		return h.Getattr(ctx, out)
	}
	if errno := n.LoopbackNode.Setattr(ctx, nil, &rest, out); errno != 0 {
		return errno
	}
	n.fs.fixAttr(&out.Attr)
	return 0
}

// truncate sets the logical size of the file, through h if there is one.
func (n *node) truncate(h *handle, size int64) syscall.Errno {
	if h != nil {
		h.in.mu.Lock()
		defer h.in.mu.Unlock()
		return h.truncate(size)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(n.backingPath(), &st); err != nil {
		return fusefs.ToErrno(err)
	}
	in := n.fs.acquire(st.Ino, n.relPath)
	defer n.fs.release(st.Ino, in)
	in.mu.Lock()
	defer in.mu.Unlock()
	open := func() (*os.File, error) { return os.OpenFile(n.backingPath(), os.O_RDWR, 0) }
	if err := in.begin(open); err != nil {
		return fusefs.ToErrno(err)
	}
	in.truncate(size)
	return 0
}

// Open opens the backing file and puts a page-cache handle over it.
func (n *node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	fh, _, errno := n.LoopbackNode.Open(ctx, flags&^openFlags)
	if errno != 0 {
		return nil, 0, errno
	}
	h, errno := n.fs.newHandle(n, fh, flags)
	return h, 0, errno
}

// Create creates the backing file (at once: metadata is never lazy) and
// puts a page-cache handle over it.
func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if n.dead() {
		return nil, nil, 0, syscall.EIO
	}
	ch, fh, _, errno := n.LoopbackNode.Create(ctx, name, flags&^openFlags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	child, ok := ch.Operations().(*node)
	if !ok { // another node took the inode number: cannot happen in one mount
		fh.(fusefs.FileReleaser).Release(ctx)
		return nil, nil, 0, syscall.EIO
	}
	h, errno := n.fs.newHandle(child, fh, flags)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	n.fs.fixAttr(&out.Attr)
	return ch, h, 0, 0
}

// Unlink removes the file; the pending data of its last link go with it.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.dead() {
		return syscall.EIO
	}
	var st syscall.Stat_t
	lerr := syscall.Lstat(filepath.Join(n.backingPath(), name), &st)
	errno := n.LoopbackNode.Unlink(ctx, name)
	if errno == 0 && lerr == nil && st.Nlink <= 1 {
		n.fs.forget(st.Ino)
	}
	return errno
}

// Rename renames in the backing directory. The file keeps its pending
// data (they are its inode's); a file replaced by the rename loses them.
func (n *node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if n.dead() {
		return syscall.EIO
	}
	var src, dst syscall.Stat_t
	replaced := false
	if p, ok := newParent.(*node); ok && flags&fusefs.RENAME_EXCHANGE == 0 {
		replaced = syscall.Lstat(filepath.Join(p.backingPath(), newName), &dst) == nil &&
			syscall.Lstat(filepath.Join(n.backingPath(), name), &src) == nil &&
			dst.Ino != src.Ino && dst.Nlink <= 1
	}
	errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags)
	if errno == 0 && replaced {
		n.fs.forget(dst.Ino)
	}
	return errno
}

// Mkdir is the loopback's, fenced after a crash.
func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if n.dead() {
		return nil, syscall.EIO
	}
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

// Rmdir is the loopback's, fenced after a crash.
func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.dead() {
		return syscall.EIO
	}
	return n.LoopbackNode.Rmdir(ctx, name)
}
