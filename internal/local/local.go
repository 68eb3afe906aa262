// Package local runs the whole system on one machine, with no cluster:
// every fortune replica as a real server on loopback, and in front of them a
// layer-4 balancer that picks a replica for each new TCP connection and
// splices bytes both ways, as kube-proxy does for a Service.
package local

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/server"
	"github.com/omikuji/omikuji/internal/throttle"
)

// The balancers. Random is what kube-proxy's iptables and nftables modes do
// (a uniform choice among ready endpoints per connection); round-robin is
// IPVS's default scheduler.
const (
	Random     = "random"
	RoundRobin = "round-robin"
)

// MaxReplicas bounds the replicas one process starts.
const MaxReplicas = 100

// DefaultAddr is where the front listener listens unless told otherwise.
const DefaultAddr = "127.0.0.1:8080"

// dialTimeout bounds the front's connection to a replica on loopback: a
// replica that cannot take it fails that client within it.
const dialTimeout = 2 * time.Second

// lingerAfterReply is how long the front keeps reading (and forwarding) a
// client's bytes once the replica has finished its answer, so that closing
// does not reset a connection whose last bytes the client has yet to read;
// it is short because every such connection holds one of the front's slots.
const lingerAfterReply = 2 * time.Second

// copyBufferSize is each direction's buffer: a drawn page and its headers
// (under 3 KiB) fit in one. Buffers are not pooled, so that a burst's are
// freed by the next collection rather than kept in a pool for two.
const copyBufferSize = 4 << 10

// Config describes a local system. The zero value is the default system.
type Config struct {
	Addr        string         // front listener; default DefaultAddr
	MetricsAddr string         // every replica's metrics, labelled by pod; "" serves none
	Replicas    fortune.Counts // default fortune.DefaultReplicas()
	Balancer    string         // Random (default) or RoundRobin
	KeepAlive   bool           // passed to every replica
	Seed        uint64         // 0: seeded from crypto/rand
	Logger      *slog.Logger   // nil discards

	// MaxConns bounds the front's concurrent connections; past it, new ones
	// are closed at once. 0 derives it from the descriptor limit (ConnLimit).
	MaxConns     int
	IdleTimeout  time.Duration // 0: DefaultIdleTimeout
	WriteTimeout time.Duration // 0: DefaultWriteTimeout
}

// A Replica is one running fortune server.
type Replica struct {
	Pod     string // "<fortune-id>-<5 letters>", like a Kubernetes pod name
	Fortune fortune.Fortune
	Addr    string // 127.0.0.1:port
}

// System is a running local system.
type System struct {
	cfg      Config
	log      *slog.Logger
	front    net.Listener
	metrics  net.Listener // nil without MetricsAddr
	replicas []Replica

	mu    sync.Mutex // guards rng, next and conns
	rng   *rand.Rand
	next  int
	conns map[net.Conn]struct{}

	slots                 chan struct{}     // one per open front connection
	refusedLog, dialedLog throttle.Warnings // warnings under a flood

	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup // accept loop, splices
	replicaW sync.WaitGroup // replica Run loops
	errs     chan error     // from replica Run loops
	closed   sync.Once
	closeErr error
}

// Start validates cfg, starts every replica and the front listener, and
// returns once everything is listening.
func Start(cfg Config) (*System, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	maxConns, err := connLimit(cfg)
	if err != nil {
		return nil, err
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		cryptorand.Read(b[:]) // never fails: it crashes the program instead
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}

	ctx, cancel := context.WithCancel(context.Background())
	s := &System{
		cfg:    cfg,
		log:    cfg.Logger,
		rng:    rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		conns:  make(map[net.Conn]struct{}),
		slots:  make(chan struct{}, maxConns),
		ctx:    ctx,
		cancel: cancel,
		errs:   make(chan error, cfg.Replicas.Total()),
	}
	if err := s.startReplicas(maxConns); err != nil {
		s.Close()
		return nil, err
	}
	front, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("front listener: %w", err)
	}
	s.front = front
	s.wg.Add(1)
	go s.accept()
	s.log.Info("local system up", "url", s.URL(), "replicas", len(s.replicas), "balancer", cfg.Balancer, "keep_alive", cfg.KeepAlive,
		"max_conns", maxConns, "idle_timeout", cfg.IdleTimeout.String(), "write_timeout", cfg.WriteTimeout.String())
	return s, nil
}

func (cfg Config) withDefaults() Config {
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Replicas == nil {
		cfg.Replicas = fortune.DefaultReplicas()
	}
	if cfg.Balancer == "" {
		cfg.Balancer = Random
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	return cfg
}

// Validate reports the first thing wrong with cfg (its zero fields taken as
// their defaults): what Start would refuse.
func (cfg Config) Validate() error {
	cfg = cfg.withDefaults()
	if err := server.CheckAddr(cfg.Addr); err != nil {
		return fmt.Errorf("--addr: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if err := server.CheckAddr(cfg.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	if cfg.Balancer != Random && cfg.Balancer != RoundRobin {
		return fmt.Errorf("--balancer: unknown balancer %q; want %s or %s", cfg.Balancer, Random, RoundRobin)
	}
	for id, n := range cfg.Replicas {
		if _, err := fortune.Lookup(id); err != nil {
			return fmt.Errorf("--replicas: %w", err)
		}
		if n < 0 {
			return fmt.Errorf("--replicas: %s: %d replicas; want ≥ 0", id, n)
		}
		if n > MaxReplicas {
			return fmt.Errorf("--replicas: %s: %d replicas; at most %d in local mode", id, n, MaxReplicas)
		}
	}
	switch total := cfg.Replicas.Total(); {
	case total == 0:
		return errors.New("--replicas: no replicas; at least one fortune needs one")
	case total > MaxReplicas:
		return fmt.Errorf("--replicas: %d replicas in all; at most %d in local mode", total, MaxReplicas)
	}
	return nil
}

// startReplicas runs one server per replica, in catalogue order, on its
// own loopback port. Each may hold maxConns connections: every one the
// front makes, as the descriptor budget (ConnLimit) counts them.
func (s *System) startReplicas(maxConns int) error {
	taken := make(map[string]bool)
	// One scrape for the whole system: the replicas share a registry, and
	// the first serves it on the metrics address.
	reg := server.NewRegistry()
	var metrics net.Listener
	if s.cfg.MetricsAddr != "" {
		var err error
		if metrics, err = server.Listen(s.ctx, s.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		s.metrics = metrics
	}
	for _, f := range fortune.Catalogue {
		for range s.cfg.Replicas[f.ID] {
			pod := s.podName(f.ID, taken)
			ln, err := server.Listen(s.ctx, "127.0.0.1:0")
			if err != nil {
				if metrics != nil {
					metrics.Close()
				}
				return fmt.Errorf("replica %s: %w", pod, err)
			}
			// No drain: nothing routes to a local replica but our own front.
			srv := server.New(server.Config{
				Fortune:   f,
				Pod:       pod,
				KeepAlive: s.cfg.KeepAlive,
				MaxConns:  maxConns,
				Logger:    s.log.With("pod", pod),
				Registry:  reg,
			})
			replicaMetrics := metrics
			metrics = nil
			s.replicas = append(s.replicas, Replica{Pod: pod, Fortune: f, Addr: ln.Addr().String()})
			s.replicaW.Add(1)
			go func() {
				defer s.replicaW.Done()
				if err := srv.Run(s.ctx, ln, replicaMetrics); err != nil {
					s.errs <- fmt.Errorf("replica %s: %w", pod, err)
				}
			}()
		}
	}
	return nil
}

// podLetters are the consonants Kubernetes uses in generated name suffixes,
// so that no suffix spells a word.
const podLetters = "bcdfghjklmnpqrstvwxz"

func (s *System) podName(id string, taken map[string]bool) string {
	for {
		var b strings.Builder
		b.WriteString(id)
		b.WriteByte('-')
		for range 5 {
			b.WriteByte(podLetters[s.rng.IntN(len(podLetters))])
		}
		if name := b.String(); !taken[name] {
			taken[name] = true
			return name
		}
	}
}

// URL is the front listener's address, e.g. "http://127.0.0.1:8080/".
func (s *System) URL() string { return "http://" + s.front.Addr().String() + "/" }

// MetricsURL is where every replica's metrics are scraped, e.g.
// "http://127.0.0.1:9080/metrics"; "" without Config.MetricsAddr.
func (s *System) MetricsURL() string {
	if s.metrics == nil {
		return ""
	}
	return "http://" + s.metrics.Addr().String() + server.MetricsPath
}

// Replicas lists the running replicas in balancing order.
func (s *System) Replicas() []Replica { return append([]Replica(nil), s.replicas...) }

// pick chooses the replica for a new connection.
func (s *System) pick() Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	var i int
	if s.cfg.Balancer == RoundRobin {
		i = s.next
		s.next = (s.next + 1) % len(s.replicas)
	} else {
		i = s.rng.IntN(len(s.replicas))
	}
	return s.replicas[i]
}

// accept takes every client the kernel hands over. One that finds every
// slot taken is closed at once: waiting would hold its descriptor, and a
// closed connection tells the client to retry far sooner than a timeout.
func (s *System) accept() {
	defer s.wg.Done()
	for {
		c, err := s.front.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors (another part of the process, or a
			// limit lowered after start) and the like: back off, keep serving.
			if n, ok := s.refusedLog.Allow(); ok {
				s.log.Warn("accept", "err", err, "suppressed", n)
			}
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		select {
		case s.slots <- struct{}{}:
		default:
			c.Close()
			if n, ok := s.refusedLog.Allow(); ok {
				s.log.Warn("front connection limit reached; refusing connections", "max_conns", cap(s.slots), "suppressed", n)
			}
			continue
		}
		r := s.pick()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.slots }()
			s.splice(c, r)
		}()
	}
}

// track registers conns so that Close can cut them; it refuses once
// Close has begun.
func (s *System) track(conns ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return false
	}
	for _, c := range conns {
		s.conns[c] = struct{}{}
	}
	return true
}

func (s *System) untrack(conns ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range conns {
		delete(s.conns, c)
	}
}

// splice connects a client to a replica and copies bytes both ways. Each
// direction half-closes its destination when its source ends, so HTTP's
// close-delimited responses arrive whole. Every write has a deadline, and
// a watchdog cuts the connection once no byte has moved either way for the
// idle timeout, so no peer can hold a slot for longer than that.
func (s *System) splice(client net.Conn, r Replica) {
	defer client.Close()
	d := net.Dialer{Timeout: dialTimeout}
	backend, err := d.DialContext(s.ctx, "tcp", r.Addr)
	if err != nil {
		if n, ok := s.dialedLog.Allow(); ok && s.ctx.Err() == nil {
			s.log.Warn("dial replica", "pod", r.Pod, "err", err, "suppressed", n)
		}
		return
	}
	defer backend.Close()
	if !s.track(client, backend) {
		return
	}
	defer s.untrack(client, backend)
	if s.log.Enabled(s.ctx, slog.LevelDebug) {
		s.log.Debug("connection", "client", client.RemoteAddr().String(), "pod", r.Pod)
	}

	l := &link{client: client, backend: backend, idle: s.cfg.IdleTimeout, write: s.cfg.WriteTimeout}
	l.touch()
	// Armed only once l.watchdog is set: checkIdle resets it.
	l.watchdog = time.AfterFunc(time.Duration(math.MaxInt64), l.checkIdle)
	l.watchdog.Reset(l.idle)
	defer l.watchdog.Stop()

	upstream := make(chan struct{})
	go func() {
		defer close(upstream)
		// A replica that stops taking bytes (it has answered and closed)
		// does not end the client's side: its bytes are read and dropped
		// until it closes or the linger ends, so that closing does not
		// reset the answer under it.
		if l.copy(backend, client, true) == nil {
			closeWrite(backend)
		}
	}()
	if err := l.copy(client, backend, false); err != nil {
		// The client stopped reading, or the replica failed: no answer
		// will complete, so cut both sides now.
		l.cut()
	} else {
		closeWrite(client)
		// The replica is done; give the client a moment to finish, no more.
		client.SetReadDeadline(time.Now().Add(lingerAfterReply))
	}
	<-upstream
}

// A link is one spliced connection's shared state.
type link struct {
	client, backend net.Conn
	idle, write     time.Duration
	watchdog        *time.Timer
	last            atomic.Int64 // when a byte last arrived either way, UnixNano
}

func (l *link) touch() { l.last.Store(time.Now().UnixNano()) }

// checkIdle runs on the watchdog: it cuts the link if nothing has moved
// for the idle timeout, or waits for the rest of it.
func (l *link) checkIdle() {
	left := time.Until(time.Unix(0, l.last.Load()).Add(l.idle))
	if left > 0 {
		l.watchdog.Reset(left)
		return
	}
	l.cut()
}

// cut closes both sides, which ends both copies at once.
func (l *link) cut() {
	l.client.Close()
	l.backend.Close()
}

// copy moves bytes from src to dst until src ends (nil) or fails, each
// write bounded by the write timeout. It does not use io.Copy: that would
// splice through a pipe pair (two more descriptors per direction, pooled
// beyond the connection's life) and could not renew a deadline per write.
// With drain, a failed write ends only the writing: src is read to its
// end and dropped.
func (l *link) copy(dst, src net.Conn, drain bool) error {
	buf := make([]byte, copyBufferSize)
	var werr error
	for {
		n, err := src.Read(buf)
		if n > 0 {
			l.touch()
			if werr == nil {
				dst.SetWriteDeadline(time.Now().Add(l.write))
				_, werr = dst.Write(buf[:n])
				if werr != nil && !drain {
					return werr
				}
			}
		}
		if errors.Is(err, io.EOF) {
			return werr
		}
		if err != nil {
			return err
		}
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// Close stops the front listener and every replica, cuts open connections
// and waits for every goroutine. It returns the first replica error, if any.
func (s *System) Close() error {
	s.closed.Do(func() {
		s.mu.Lock()
		s.cancel()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		if s.front != nil {
			s.front.Close()
		}
		s.wg.Wait()
		s.replicaW.Wait()
		close(s.errs)
		for err := range s.errs {
			s.closeErr = errors.Join(s.closeErr, err)
		}
	})
	return s.closeErr
}
