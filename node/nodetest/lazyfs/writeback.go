package lazyfs

import (
	"sort"
	"syscall"
)

// writeBack is what one sync writes: the inode's dirty state when it
// started.
type writeBack struct {
	fd             int
	size, backSize int64
	runs           []run
	versions       map[int64]uint64 // the pages written, at their version
	written        int64
}

// run is adjacent dirty pages, written with one pwrite.
type run struct {
	off  int64
	data []byte
}

// sync writes the inode's dirty pages and size to the backing file and
// fdatasyncs it. Writes that come during the I/O stay dirty. After a
// crash it fails with EIO.
func (in *inode) sync() error {
	in.syncMu.Lock()
	defer in.syncMu.Unlock()
	in.mu.Lock()
	if in.crashed.Load() {
		in.mu.Unlock()
		return syscall.EIO
	}
	if !in.dirty {
		in.mu.Unlock()
		return nil
	}
	wb := in.snapshot()
	in.lowSize = wb.size
	in.mu.Unlock()

	err := wb.write()

	in.mu.Lock()
	defer in.mu.Unlock()
	low := in.lowSize
	in.lowSize = -1
	if err != nil {
		return err
	}
	in.settle(wb, low)
	return nil
}

// snapshot copies the dirty state. mu must be held.
func (in *inode) snapshot() *writeBack {
	wb := &writeBack{fd: int(in.fd.Fd()), size: in.size, backSize: in.backSize,
		versions: make(map[int64]uint64, len(in.pages)), written: in.written}
	idx := make([]int64, 0, len(in.pages))
	for p := range in.pages {
		idx = append(idx, p)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	for _, p := range idx {
		pg := in.pages[p]
		wb.versions[p] = pg.version
		start := p * pageSize
		data := pg.data[:min(pageSize, in.size-start)]
		if last := len(wb.runs) - 1; last >= 0 && wb.runs[last].off+int64(len(wb.runs[last].data)) == start {
			wb.runs[last].data = append(wb.runs[last].data, data...)
			continue
		}
		wb.runs = append(wb.runs, run{off: start, data: append([]byte(nil), data...)})
	}
	return wb
}

// write makes the backing file what the snapshot says, and fdatasyncs it.
func (wb *writeBack) write() error {
	var st syscall.Stat_t
	if err := syscall.Fstat(wb.fd, &st); err != nil {
		return err
	}
	if wb.backSize < st.Size {
		if err := syscall.Ftruncate(wb.fd, wb.backSize); err != nil {
			return err
		}
	}
	end := wb.backSize
	for _, r := range wb.runs {
		if _, err := syscall.Pwrite(wb.fd, r.data, r.off); err != nil {
			return err
		}
		end = max(end, r.off+int64(len(r.data)))
	}
	if end != wb.size {
		if err := syscall.Ftruncate(wb.fd, wb.size); err != nil {
			return err
		}
	}
	return syscall.Fdatasync(wb.fd)
}

// settle marks clean what the write-back wrote and nothing changed since;
// low is the lowest size a truncate set meanwhile. mu must be held.
func (in *inode) settle(wb *writeBack, low int64) {
	for p, v := range wb.versions {
		if pg, ok := in.pages[p]; ok && pg.version == v {
			delete(in.pages, p)
		}
	}
	// The backing file now holds wb.size bytes, of which those below a
	// later truncate are still valid.
	in.backSize = min(wb.size, low)
	in.written -= wb.written
	if len(in.pages) == 0 && in.size == in.backSize && low >= wb.size {
		in.clean()
	}
}
