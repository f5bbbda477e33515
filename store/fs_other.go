//go:build !unix

package store

import "os"

// restrictUmask does nothing where there is no umask.
func restrictUmask() {}

// freeBytes reports unlimited space where the file system cannot be asked.
func freeBytes(string) (uint64, error) { return 1 << 62, nil }

// diskUsage is the size of the file; 0 when unknown.
func diskUsage(path string) uint64 {
	info, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return uint64(info.Size())
}

// lockDir does not lock where there is no flock; Badger's own lock still guards the open.
func lockDir(string, bool) (func(), bool, error) { return func() {}, true, nil }
