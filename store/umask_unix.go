//go:build unix

package store

import "golang.org/x/sys/unix"

// restrictUmask adds 077 to the process umask, so that the files Badger creates are private.
func restrictUmask() {
	old := unix.Umask(0o077)
	unix.Umask(old | 0o077)
}
