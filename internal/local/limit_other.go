//go:build !unix

package local

// openFileLimit: no RLIMIT_NOFILE here; the front keeps to MaxConnsCap.
func openFileLimit() (uint64, bool) { return 0, false }
