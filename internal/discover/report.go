package discover

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
)

// Summary counts the targets by status.
type Summary struct {
	Probed     int `json:"probed"`
	PostgreSQL int `json:"postgresql"`
	Other      int `json:"not_postgresql"`
	Closed     int `json:"closed"`
	NoAnswer   int `json:"unreachable"`
	Unresolved int `json:"unresolved"`
}

// Summarize counts servers by status.
func Summarize(servers []Server) Summary {
	sum := Summary{Probed: len(servers)}
	for _, s := range servers {
		switch s.Status {
		case StatusPostgres:
			sum.PostgreSQL++
		case StatusOther:
			sum.Other++
		case StatusClosed:
			sum.Closed++
		case StatusUnresolved:
			sum.Unresolved++
		default:
			sum.NoAnswer++
		}
	}
	return sum
}

// WriteText prints one block per target: a PostgreSQL server with its
// version and databases, or what else was found there.
func WriteText(w io.Writer, servers []Server) error {
	var b strings.Builder
	for _, s := range servers {
		addr := net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
		if s.Status != StatusPostgres {
			fmt.Fprintf(&b, "%-22s %s: %s\n", addr, strings.ReplaceAll(string(s.Status), "_", " "), s.Detail)
			continue
		}
		version := "version unknown"
		if s.Version != "" {
			version = s.Version
		}
		fmt.Fprintf(&b, "%-22s PostgreSQL %s (%s)", addr, version, s.Detail)
		if s.Login != "ok" {
			fmt.Fprintf(&b, "; login: %s", s.Login)
		}
		b.WriteString("\n")
		for _, d := range s.Databases {
			writeDatabase(&b, d)
		}
	}
	sum := Summarize(servers)
	fmt.Fprintf(&b, "%d targets probed: %d PostgreSQL, %d other services, %d closed, %d unreachable, %d unresolved\n",
		sum.Probed, sum.PostgreSQL, sum.Other, sum.Closed, sum.NoAnswer, sum.Unresolved)
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDatabase(b *strings.Builder, d Database) {
	fmt.Fprintf(b, "    %-20s ", d.Name)
	if d.Error != "" {
		fmt.Fprintf(b, "not checked: %s\n", d.Error)
		return
	}
	fmt.Fprintf(b, "%10s %5d tables  ", size(d.SizeBytes), d.Tables)
	switch len(d.Blockers) {
	case 0:
		b.WriteString("ready to link\n")
	case 1:
		fmt.Fprintf(b, "not ready: %s\n", d.Blockers[0])
	default:
		fmt.Fprintf(b, "not ready: %s (and %d more; see pglink assess)\n", d.Blockers[0], len(d.Blockers)-1)
	}
}

func size(n *int64) string {
	if n == nil {
		return "?"
	}
	f, units := float64(*n), []string{"bytes", "kB", "MB", "GB", "TB"}
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%d bytes", *n)
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}
