//go:build !unix

package store

// restrictUmask does nothing where there is no umask.
func restrictUmask() {}
