//go:build !unix

package store

// restrictUmask does nothing where there is no umask.
func restrictUmask() {}

// lockDir does not lock where there is no flock; Badger's own lock still guards the open.
func lockDir(string, bool) (func(), bool, error) { return func() {}, true, nil }
