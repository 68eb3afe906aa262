//go:build unix

package local

import "syscall"

// openFileLimit is the process's current (soft) RLIMIT_NOFILE. Go raises it
// to the hard limit at start-up; a lower one set by ulimit -n or prlimit
// before exec stays.
func openFileLimit() (uint64, bool) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0, false
	}
	return uint64(r.Cur), true
}
