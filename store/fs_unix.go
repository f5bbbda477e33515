//go:build unix

package store

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// restrictUmask adds 077 to the process umask, so that the files Badger creates are private.
func restrictUmask() {
	old := unix.Umask(0o077)
	unix.Umask(old | 0o077)
}

// freeBytes returns the space available to an unprivileged process on dir's file system.
func freeBytes(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// diskUsage is the disk space a (possibly sparse) file occupies; 0 when unknown.
func diskUsage(path string) uint64 {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0
	}
	return uint64(st.Blocks) * 512
}

// lockDir takes the lock Badger takes on dir (flock, exclusive or shared for read-only), so
// that no other process changes the files while Open checks them. locked is false when
// another process holds it (Badger's own open then says so) or dir does not exist yet.
func lockDir(dir string, shared bool) (unlock func(), locked bool, err error) {
	f, err := os.Open(dir)
	if os.IsNotExist(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("open state directory: %w", err)
	}
	how := unix.LOCK_EX | unix.LOCK_NB
	if shared {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	if err := unix.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		return nil, false, nil
	}
	return func() { f.Close() }, true, nil
}
