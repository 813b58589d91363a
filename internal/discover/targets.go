// Package discover finds PostgreSQL servers on the network: it probes
// hosts and ports in parallel with an SSLRequest, which every PostgreSQL
// server answers with one byte before any credentials, then logs in where
// it can to read the version and the databases, and checks whether each
// database is ready to link.
package discover

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Limits of one discovery, so a typing error cannot start a scan of a
// whole network.
const (
	MaxBlockAddresses = 1024  // a /22 of IPv4, a /118 of IPv6
	MaxProbes         = 65536 // hosts times ports
)

// ExpandHosts turns host names, addresses and CIDR blocks into the hosts
// to probe, in the order given, without duplicates. A block of more than
// MaxBlockAddresses addresses is refused. For IPv4 blocks of four
// addresses or more, the network and broadcast addresses are left out.
func ExpandHosts(specs []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	add := func(h string) {
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		if !strings.Contains(spec, "/") {
			add(strings.Trim(spec, "[]"))
			continue
		}
		hosts, err := expandBlock(spec)
		if err != nil {
			return nil, err
		}
		for _, h := range hosts {
			add(h)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no hosts: give names, addresses or CIDR blocks, e.g. --hosts db1,10.0.0.0/24")
	}
	return out, nil
}

func expandBlock(spec string) ([]string, error) {
	ip, block, err := net.ParseCIDR(spec)
	if err != nil {
		return nil, fmt.Errorf("host %q is not a valid CIDR block (like 10.0.0.0/24)", spec)
	}
	ones, bits := block.Mask.Size()
	hostBits := bits - ones
	if hostBits > 10 {
		return nil, fmt.Errorf("block %s holds %s addresses; pglink discover probes blocks of at most %d addresses (/22 for IPv4, /118 for IPv6): split it into smaller blocks",
			spec, blockSize(hostBits), MaxBlockAddresses)
	}
	n := 1 << hostBits
	first := ip.Mask(block.Mask)
	var out []string
	for i := range n {
		if ip.To4() != nil && hostBits >= 2 && (i == 0 || i == n-1) {
			continue // network and broadcast address
		}
		out = append(out, addToIP(first, i).String())
	}
	return out, nil
}

func blockSize(hostBits int) string {
	if hostBits >= 63 {
		return "2^" + strconv.Itoa(hostBits)
	}
	return strconv.FormatInt(int64(1)<<hostBits, 10)
}

// addToIP returns ip + n.
func addToIP(ip net.IP, n int) net.IP {
	out := make(net.IP, len(ip))
	copy(out, ip)
	carry := n
	for i := len(out) - 1; i >= 0 && carry > 0; i-- {
		sum := int(out[i]) + carry
		out[i] = byte(sum)
		carry = sum >> 8
	}
	return out
}

// ParsePorts reads a port list: numbers and ranges, comma-separated, e.g.
// "5432", "5432-5439", "5432,6432,7000-7010".
func ParsePorts(spec string) ([]int, error) {
	var out []int
	seen := map[int]bool{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		from, err1 := parsePort(lo)
		to, err2 := from, error(nil)
		if isRange {
			to, err2 = parsePort(hi)
		}
		if err1 != nil || err2 != nil || to < from {
			return nil, fmt.Errorf("port %q: give ports from 1 to 65535 and ranges like 5432-5439", part)
		}
		for p := from; p <= to; p++ {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no ports: give ports and ranges, e.g. --ports 5432-5439")
	}
	return out, nil
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("invalid port %q", s)
	}
	return p, nil
}
