//go:build !unix

package rlimit

func noFile() (uint64, bool) { return 0, false }
