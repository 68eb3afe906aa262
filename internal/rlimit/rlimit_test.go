//go:build unix

package rlimit

import (
	"syscall"
	"testing"
)

func TestNoFileIsTheSoftLimit(t *testing.T) {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		t.Fatal(err)
	}
	if n, ok := NoFile(); !ok || n != r.Cur {
		t.Errorf("NoFile() = %d, %v; the soft limit is %d", n, ok, r.Cur)
	}
}
