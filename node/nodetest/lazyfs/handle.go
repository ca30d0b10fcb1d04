package lazyfs

import (
	"context"
	"fmt"
	"os"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// handle is an open file of the mount. Reads and writes go through its
// inode's page cache; fsync writes the inode back. It does not offer
// go-fuse's passthrough (the kernel would write to the backing file
// itself), Lseek (SEEK_DATA would see the backing file) nor Allocate.
type handle struct {
	fs   *FS
	lf   *fusefs.LoopbackFile // the backing file, opened without openFlags
	fd   int
	ino  uint64
	in   *inode
	sync bool // opened with O_SYNC or O_DSYNC
}

var (
	_ fusefs.FileReader    = (*handle)(nil)
	_ fusefs.FileWriter    = (*handle)(nil)
	_ fusefs.FileFsyncer   = (*handle)(nil)
	_ fusefs.FileFlusher   = (*handle)(nil)
	_ fusefs.FileReleaser  = (*handle)(nil)
	_ fusefs.FileGetattrer = (*handle)(nil)
)

// newHandle wraps the loopback file fh of node n, opened with flags.
func (f *FS) newHandle(n *node, fh fusefs.FileHandle, flags uint32) (*handle, syscall.Errno) {
	lf, ok := fh.(*fusefs.LoopbackFile)
	fd, fdOK := 0, false
	if ok {
		fd, fdOK = lf.PassthroughFd() // only to read and write it here
	}
	if !fdOK {
		if r, ok := fh.(fusefs.FileReleaser); ok {
			r.Release(context.Background())
		}
		return nil, syscall.EIO
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		lf.Release(context.Background())
		return nil, fusefs.ToErrno(err)
	}
	h := &handle{fs: f, lf: lf, fd: fd, ino: st.Ino, sync: flags&(syscall.O_SYNC|syscall.O_DSYNC) != 0}
	h.in = f.acquire(st.Ino, n.relPath)
	if flags&syscall.O_TRUNC != 0 {
		h.in.mu.Lock()
		errno := h.truncate(0)
		h.in.mu.Unlock()
		if errno != 0 {
			h.Release(context.Background())
			return nil, errno
		}
	}
	return h, 0
}

// reopen opens the backing file read-write for the inode, whatever h's
// mode is: the page cache loads pages from it and writes them back.
func (h *handle) reopen() (*os.File, error) {
	return os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", h.fd), os.O_RDWR, 0)
}

// truncate sets the file's logical size. h.in.mu must be held.
func (h *handle) truncate(size int64) syscall.Errno {
	if h.fs.crashed.Load() {
		return syscall.EIO
	}
	if err := h.in.begin(h.reopen); err != nil {
		return fusefs.ToErrno(err)
	}
	h.in.truncate(size)
	return 0
}

// Read reads the file as it is now: backing file and pending pages.
func (h *handle) Read(_ context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	n, err := h.in.readAt(buf, off, h.fd)
	if err != nil {
		return nil, fusefs.ToErrno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

// Write puts data in the page cache, and writes the file back at once
// if it was opened with O_SYNC or O_DSYNC.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, errno := h.write(data, off)
	if errno == 0 && h.sync {
		errno = h.Fsync(ctx, 0)
	}
	return n, errno
}

func (h *handle) write(data []byte, off int64) (uint32, syscall.Errno) {
	h.in.mu.Lock()
	defer h.in.mu.Unlock()
	if h.fs.crashed.Load() {
		return 0, syscall.EIO
	}
	if err := h.in.begin(h.reopen); err != nil {
		return 0, fusefs.ToErrno(err)
	}
	if err := h.in.writeAt(data, off); err != nil {
		return 0, fusefs.ToErrno(err)
	}
	return uint32(len(data)), 0
}

// Fsync writes the file's pending data back, whichever handle wrote it.
func (h *handle) Fsync(context.Context, uint32) syscall.Errno {
	return fusefs.ToErrno(h.in.sync())
}

// Flush (each close of a descriptor) persists nothing, as on a disk.
func (h *handle) Flush(context.Context) syscall.Errno { return 0 }

// Release closes the backing file; pending data stay in the inode.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	errno := h.lf.Release(ctx)
	h.fs.release(h.ino, h.in)
	return errno
}

// Getattr is the backing file's attributes with the logical size.
func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	if errno := h.lf.Getattr(ctx, out); errno != 0 {
		return errno
	}
	h.in.mu.Lock()
	h.in.fixAttr(&out.Attr)
	h.in.mu.Unlock()
	return 0
}
