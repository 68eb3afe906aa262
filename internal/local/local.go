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
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/omikuji/omikuji/internal/fortune"
	"github.com/omikuji/omikuji/internal/server"
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

// DefaultMetricsAddr is where omikuji local serves every replica's metrics
// unless told otherwise.
const DefaultMetricsAddr = "127.0.0.1:9090"

// dialTimeout bounds the front's connection to a replica on loopback.
const dialTimeout = 2 * time.Second

// lingerAfterReply is how long a client may keep its side of a connection
// open once the replica has closed its own: enough to read the last bytes,
// not enough to pile up half-closed connections.
const lingerAfterReply = 10 * time.Second

// Config describes a local system. The zero value is the default system.
type Config struct {
	Addr        string         // front listener; default DefaultAddr
	MetricsAddr string         // every replica's metrics, labelled by pod; "" serves none
	Replicas    fortune.Counts // default fortune.DefaultReplicas()
	Balancer    string         // Random (default) or RoundRobin
	KeepAlive   bool           // passed to every replica
	Seed        uint64         // 0: seeded from crypto/rand
	Logger      *slog.Logger   // nil discards
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
		ctx:    ctx,
		cancel: cancel,
		errs:   make(chan error, cfg.Replicas.Total()),
	}
	if err := s.startReplicas(); err != nil {
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
	s.log.Info("local system up", "url", s.URL(), "replicas", len(s.replicas), "balancer", cfg.Balancer, "keep_alive", cfg.KeepAlive)
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
// own loopback port.
func (s *System) startReplicas() error {
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
// "http://127.0.0.1:9090/metrics"; "" without Config.MetricsAddr.
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

func (s *System) accept() {
	defer s.wg.Done()
	for {
		c, err := s.front.Accept()
		if err != nil {
			if s.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep serving.
			s.log.Warn("accept", "err", err)
			select {
			case <-time.After(50 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		r := s.pick()
		s.wg.Add(1)
		go s.splice(c, r)
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
// close-delimited responses arrive whole.
func (s *System) splice(client net.Conn, r Replica) {
	defer s.wg.Done()
	defer client.Close()
	d := net.Dialer{Timeout: dialTimeout}
	backend, err := d.DialContext(s.ctx, "tcp", r.Addr)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("dial replica", "pod", r.Pod, "err", err)
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

	upstream := make(chan struct{})
	go func() {
		defer close(upstream)
		io.Copy(backend, client)
		closeWrite(backend)
	}()
	io.Copy(client, backend)
	closeWrite(client)
	// The replica is done; give the client a moment to finish, no more.
	client.SetReadDeadline(time.Now().Add(lingerAfterReply))
	<-upstream
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
