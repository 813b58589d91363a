package web

import (
	"context"
	"sync"
	"time"

	"github.com/pglink/pglink/internal/report"
	"github.com/pglink/pglink/internal/state"
)

// readEvery is how long a link's status and history read from its servers
// serve the link page: every open page polls each second, and many open
// pages (or scripts) must not each open sessions on the target and the
// source. Tests shorten it.
var readEvery = time.Second

// stored is what a link page reads from the link's servers.
type stored struct {
	Status      *report.Status
	StatusError string
	History     []state.HistoryEvent
	Failover    *FailoverView // the last failover recorded on the target, or nil
}

// readCache keeps each link's last read for readEvery; a read that runs
// serves every request that comes meanwhile (one read at a time per link).
type readCache struct {
	mu    sync.Mutex
	links map[string]*cachedRead
}

type cachedRead struct {
	mu   sync.Mutex // held while a read runs
	at   time.Time
	data stored
}

func newReadCache() *readCache { return &readCache{links: map[string]*cachedRead{}} }

// get returns link name's read, fresh within readEvery, reading it with
// read when it is not.
func (c *readCache) get(ctx context.Context, name string, read func(context.Context) stored) stored {
	c.mu.Lock()
	e := c.links[name]
	if e == nil {
		e = &cachedRead{}
		c.links[name] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.at.IsZero() && time.Since(e.at) < readEvery {
		return e.data
	}
	e.data = read(ctx)
	e.at = time.Now()
	return e.data
}

// forget drops the reads of links not in keep (links removed from the
// file), so the cache does not grow with every name ever served.
func (c *readCache) forget(keep map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for name := range c.links {
		if !keep[name] {
			delete(c.links, name)
		}
	}
}
