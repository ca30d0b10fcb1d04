// Package lazyfs is a FUSE file system for power-loss tests, after the
// LazyFS tool Jepsen uses: a passthrough over a backing directory that
// keeps the data written to files in memory, as a kernel's page cache
// does, until they are fsynced. Crash drops what was not fsynced, so the
// backing directory is left as a power loss would leave a disk.
//
// The model, as LazyFS's:
//
//   - Data written to a file is held per inode (4 KiB pages and the
//     file's logical size, truncates included) and not written to the
//     backing file. Reads and sizes through the mount see it.
//   - fsync or fdatasync on any handle of a file, and every write through
//     a handle opened with O_SYNC or O_DSYNC, writes that file's pending
//     data to the backing file. Closing a file does not. Writes are not
//     held back while a file is fsynced: those that come during the fsync
//     stay pending, as on a disk.
//   - Metadata operations (create, mkdir, rename, unlink, rmdir, chmod,
//     readdir, …) go straight to the backing directory: they are never
//     lost, so a missing fsync of a directory goes unnoticed. A renamed
//     file keeps its pending data; an unlinked one loses it.
//   - The backing directory itself is taken not to crash: a sync writes
//     the pages there and fdatasyncs them, but what Crash keeps is simply
//     what the backing directory holds at that moment.
//
// syncfs(2) and sync(2) succeed without reaching this file system (seen
// on Linux 6.18: the kernel sends no FUSE_SYNCFS to it), so here, unlike
// on a disk, only fsync, fdatasync and O_SYNC/O_DSYNC persist data.
//
// Use: Mount (or MountTest, which unmounts when the test ends), run the
// program under test on the mount point, SIGKILL it, Crash, Unmount, and
// start it again on the backing directory (or a new mount over it).
//
// It is for tests: it needs /dev/fuse and the right to mount (root), and
// MountTest skips a test where they are missing. Not for production code.
package lazyfs
