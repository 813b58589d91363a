package web

import (
	"context"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/report"
)

// Sampling: throughput is measured between two readings a second apart;
// lag is kept every LagEvery for the last hour (LagKeep samples), for the
// link page's chart. Tests shorten LagEvery.
var (
	LagEvery = 5 * time.Second
	LagKeep  = 720
)

const rateEvery = time.Second

// LagSample is one reading of a link's lag.
type LagSample struct {
	At      time.Time `json:"at"`
	Seconds *float64  `json:"lag_seconds"`
	Bytes   *int64    `json:"lag_bytes"`
}

// rates is a link's throughput over the last reading.
type rates struct {
	TxnPerSec  float64 `json:"txn_per_sec"`
	RowsPerSec float64 `json:"rows_per_sec"`
}

type linkSamples struct {
	last     report.Live
	lastAt   time.Time
	rates    rates
	lag      []LagSample // a ring of LagKeep
	next     int
	lagAt    time.Time
	lastSeen time.Time
}

// sampler keeps each link's throughput and lag history in memory.
type sampler struct {
	mu    sync.Mutex
	links map[string]*linkSamples
}

func newSampler() *sampler { return &sampler{links: map[string]*linkSamples{}} }

func (s *sampler) run(ctx context.Context, snapshot func() []report.Live) {
	t := time.NewTicker(rateEvery)
	defer t.Stop()
	for {
		s.take(snapshot(), time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// take records one reading of every link; links gone are forgotten.
func (s *sampler) take(links []report.Live, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range links {
		ls := s.links[l.Name]
		if ls == nil {
			ls = &linkSamples{}
			s.links[l.Name] = ls
		}
		if !ls.lastAt.IsZero() {
			dt := now.Sub(ls.lastAt).Seconds()
			ls.rates = rates{
				TxnPerSec:  perSec(l.AppliedTxns-ls.last.AppliedTxns, dt),
				RowsPerSec: perSec(rowsOf(l)-rowsOf(ls.last), dt),
			}
		}
		ls.last, ls.lastAt, ls.lastSeen = l, now, now
		if now.Sub(ls.lagAt) >= LagEvery {
			ls.addLag(LagSample{At: now, Seconds: l.LagSeconds, Bytes: l.LagBytes})
			ls.lagAt = now
		}
	}
	for name, ls := range s.links {
		if ls.lastSeen != now {
			delete(s.links, name)
		}
	}
}

func (ls *linkSamples) addLag(x LagSample) {
	if len(ls.lag) < LagKeep {
		ls.lag = append(ls.lag, x)
		return
	}
	ls.lag[ls.next] = x
	ls.next = (ls.next + 1) % LagKeep
}

// rates returns link name's throughput.
func (s *sampler) rates(name string) rates {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ls := s.links[name]; ls != nil {
		return ls.rates
	}
	return rates{}
}

// lag returns link name's lag samples, oldest first.
func (s *sampler) lag(name string) []LagSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.links[name]
	if ls == nil {
		return []LagSample{}
	}
	out := make([]LagSample, 0, len(ls.lag))
	out = append(out, ls.lag[ls.next:]...)
	return append(out, ls.lag[:ls.next]...)
}

func rowsOf(l report.Live) int64 {
	var n int64
	for _, v := range l.AppliedRows {
		n += v
	}
	return n
}

func perSec(n int64, seconds float64) float64 {
	if seconds <= 0 || n < 0 {
		return 0
	}
	return float64(n) / seconds
}
