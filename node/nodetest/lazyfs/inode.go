package lazyfs

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the unit of the page cache: a write loads the pages it
// touches from the backing file (as a kernel reads a page in before
// changing part of it), and a sync writes back whole dirty pages.
const pageSize = 4096

// inode is the page cache of one backing file: its dirty pages and its
// logical size, neither of them in the backing file yet. It is keyed by
// the backing file's inode number, so it follows the file through renames
// and survives the kernel forgetting the FUSE inode.
//
// Locks, always taken in this order: syncMu (one write-back at a time,
// and no descriptor closed under one), FS.mu (refs, gone), mu (the rest).
// A write-back does its I/O without mu, as a kernel does not stop writes
// to a file while it is fsynced: what is written meanwhile stays dirty.
type inode struct {
	crashed *atomic.Bool // the FS's

	refs int  // open handles
	gone bool // unlinked: no longer in FS.inodes

	syncMu sync.Mutex

	mu    sync.Mutex
	path  func() string // where the file is now, for Crash's report
	fd    *os.File      // read-write on the backing file, while dirty or open
	dirty bool
	// size is the file's logical size while dirty; backSize is how much
	// of the backing file is still valid (a truncate lowers it: bytes of
	// the backing file past it read as zeros until they are written).
	size, backSize int64
	pages          map[int64]*page // by page index
	version        uint64          // counts the changes, to version pages
	written        int64           // bytes written since the last sync
	// lowSize is the lowest size a truncate set during a write-back
	// (-1: no write-back under way).
	lowSize int64
}

// page is one dirty page, with the version of its last change.
type page struct {
	data    []byte // pageSize bytes
	version uint64
}

func newInode(crashed *atomic.Bool, path func() string) *inode {
	return &inode{crashed: crashed, path: path, lowSize: -1}
}

// begin makes the inode dirty, if it is not yet, with the backing file's
// current size; open gives a read-write descriptor of the backing file.
func (in *inode) begin(open func() (*os.File, error)) error {
	if in.dirty {
		return nil
	}
	if in.fd == nil {
		fd, err := open()
		if err != nil {
			return err
		}
		in.fd = fd
	}
	st, err := in.fd.Stat()
	if err != nil {
		return err
	}
	in.size, in.backSize = st.Size(), st.Size()
	in.pages = make(map[int64]*page)
	in.dirty = true
	return nil
}

// readAt reads into dst at off, as the file is now: the backing file
// (through backing, a descriptor of it) overlaid with the dirty pages.
func (in *inode) readAt(dst []byte, off int64, backing int) (int, error) {
	if !in.dirty {
		return preadFull(backing, dst, off)
	}
	if off >= in.size {
		return 0, nil
	}
	n := min(int64(len(dst)), in.size-off)
	dst = dst[:n]
	got := 0
	if off < in.backSize {
		var err error
		if got, err = preadFull(backing, dst[:min(n, in.backSize-off)], off); err != nil {
			return 0, err
		}
	}
	clear(dst[got:])
	for p := off / pageSize; p*pageSize < off+n; p++ {
		if pg, ok := in.pages[p]; ok {
			start := max(off, p*pageSize)
			end := min(off+n, (p+1)*pageSize)
			copy(dst[start-off:end-off], pg.data[start-p*pageSize:end-p*pageSize])
		}
	}
	return int(n), nil
}

// writeAt puts data at off in the dirty pages. The inode must be dirty.
func (in *inode) writeAt(data []byte, off int64) error {
	in.version++
	for len(data) > 0 {
		p := off / pageSize
		pg, err := in.page(p)
		if err != nil {
			return err
		}
		n := copy(pg.data[off-p*pageSize:], data)
		pg.version = in.version
		data, off = data[n:], off+int64(n)
		in.written += int64(n)
		in.size = max(in.size, off)
	}
	return nil
}

// page returns dirty page p, loading it from the backing file first.
func (in *inode) page(p int64) (*page, error) {
	if pg, ok := in.pages[p]; ok {
		return pg, nil
	}
	pg := &page{data: make([]byte, pageSize)}
	if start := p * pageSize; start < in.backSize {
		if _, err := preadFull(int(in.fd.Fd()), pg.data[:min(pageSize, in.backSize-start)], start); err != nil {
			return nil, err
		}
	}
	in.pages[p] = pg
	return pg, nil
}

// truncate sets the logical size. The inode must be dirty.
func (in *inode) truncate(size int64) {
	in.version++
	in.size = size
	in.backSize = min(in.backSize, size)
	if in.lowSize >= 0 {
		in.lowSize = min(in.lowSize, size)
	}
	for p, pg := range in.pages {
		switch start := p * pageSize; {
		case start >= size:
			delete(in.pages, p)
		case start+pageSize > size:
			clear(pg.data[size-start:])
			pg.version = in.version
		}
	}
}

// clean forgets the dirty state (synced or dropped).
func (in *inode) clean() {
	in.dirty = false
	in.pages = nil
	in.size, in.backSize, in.written = 0, 0, 0
}

// closeFD closes the inode's descriptor if it is clean. syncMu and mu
// must be held.
func (in *inode) closeFD() {
	if !in.dirty && in.fd != nil {
		in.fd.Close()
		in.fd = nil
	}
}

// fixAttr reports the logical size in a's size.
func (in *inode) fixAttr(a *fuse.Attr) {
	if in.dirty {
		a.Size = uint64(in.size)
		a.Blocks = (a.Size + 511) / 512
	}
}

// preadFull reads at off until dst is full or the end of the file.
func preadFull(fd int, dst []byte, off int64) (int, error) {
	got := 0
	for got < len(dst) {
		n, err := syscall.Pread(fd, dst[got:], off+int64(got))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			return got, nil
		}
		got += n
	}
	return got, nil
}
