package local

import (
	"fmt"
	"time"

	"github.com/omikuji/omikuji/internal/rlimit"
)

// The front's limits. The front and every replica share one process, hence
// one descriptor table: a front that accepted every client could take the
// descriptors the replicas need to accept the connections it makes to them,
// and then wait on them for ever. So the front holds at most a bounded
// number of connections, refuses the rest at once, and every byte it moves
// has a deadline.
const (
	// DefaultIdleTimeout cuts a front connection on which no byte has moved
	// either way for this long. It is a cloud load balancer's usual idle
	// timeout, shorter than a replica's own keep-alive idle timeout, so that
	// the balancer, not the replica, closes idle connections.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultWriteTimeout bounds each write the front makes, toward the
	// client and toward the replica: a peer that stops reading is cut.
	DefaultWriteTimeout = 10 * time.Second
	// MaxConnsCap bounds the front's concurrent connections however many
	// descriptors the process may open; it is also the kernel's usual
	// listen backlog (net.core.somaxconn).
	MaxConnsCap = 4096
)

// Descriptor accounting for ConnLimit. A front connection costs
// descPerConn descriptors: the client's socket, the front's socket to the
// replica, the replica's accepted socket, and one spare. The copy loop
// uses no splice pipes. descReserve covers the rest of the process:
// standard streams, the runtime's poller and cgroup files, the front
// listener, a refused client's socket, log files, and the metrics port (its
// listener and at most 16 connections, each scrape reading /proc); each
// replica adds descPerReplica (its listener, and one spare).
const (
	descPerConn    = 4
	descReserve    = 64
	descPerReplica = 2
)

// ConnLimit is the largest number of concurrent front connections that a
// process allowed nofile open descriptors can carry with replicas
// replicas, capped at MaxConnsCap:
//
//	min(MaxConnsCap, (nofile − 64 − 2·replicas) / 4)
//
// It is below 1 when nofile is too small to run the system at all.
func ConnLimit(nofile uint64, replicas int) int {
	reserve := uint64(descReserve + descPerReplica*replicas)
	if nofile <= reserve {
		return 0
	}
	return int(min(uint64(MaxConnsCap), (nofile-reserve)/descPerConn))
}

// connLimit checks or derives cfg's connection limit from the process's
// descriptor limit (RLIMIT_NOFILE, read now).
func connLimit(cfg Config) (int, error) {
	nofile, ok := rlimit.NoFile()
	bound := MaxConnsCap
	if ok {
		bound = ConnLimit(nofile, cfg.Replicas.Total())
	}
	switch {
	case bound < 1:
		return 0, fmt.Errorf("the descriptor limit (ulimit -n) is %d: too low for %d replicas; raise it to at least %d",
			nofile, cfg.Replicas.Total(), descReserve+descPerReplica*cfg.Replicas.Total()+descPerConn)
	case cfg.MaxConns < 0:
		return 0, fmt.Errorf("max connections %d; want ≥ 0 (0: derived from the descriptor limit)", cfg.MaxConns)
	case cfg.MaxConns > bound && ok:
		return 0, fmt.Errorf("max connections %d; the descriptor limit (ulimit -n) %d carries at most %d with %d replicas", cfg.MaxConns, nofile, bound, cfg.Replicas.Total())
	case cfg.MaxConns > bound:
		return 0, fmt.Errorf("max connections %d; at most %d", cfg.MaxConns, bound)
	case cfg.MaxConns > 0:
		return cfg.MaxConns, nil
	}
	return bound, nil
}
