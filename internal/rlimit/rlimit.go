// Package rlimit reads the process's limit on open descriptors, the one
// figure that bounds how many connections a process can hold.
package rlimit

// NoFile is the process's current (soft) RLIMIT_NOFILE; ok is false where
// the system has none. Go raises the soft limit to the hard limit at
// start-up; a lower one set by ulimit -n or prlimit before exec stays.
func NoFile() (n uint64, ok bool) { return noFile() }
