package seed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/endpoint"
)

// pgBinDirs are the places searched for pg_dump after $PGLINK_PGBIN and
// $PATH: Debian and Ubuntu install every major version side by side there.
const pgBinGlob = "/usr/lib/postgresql/*/bin"

// findPgDump returns a pg_dump not older than the server it dumps:
// pg_dump refuses servers of a newer major version ("aborting because of
// server version mismatch"). It prefers $PGLINK_PGBIN, then $PATH, then the
// newest /usr/lib/postgresql/N/bin.
func findPgDump(ctx context.Context, serverVersionNum int) (string, error) {
	var candidates []string
	if dir := os.Getenv("PGLINK_PGBIN"); dir != "" {
		candidates = append(candidates, filepath.Join(dir, "pg_dump"))
	}
	if p, err := exec.LookPath("pg_dump"); err == nil {
		candidates = append(candidates, p)
	}
	dirs, _ := filepath.Glob(pgBinGlob)
	sort.Slice(dirs, func(i, j int) bool { return dirMajor(dirs[i]) > dirMajor(dirs[j]) })
	for _, d := range dirs {
		candidates = append(candidates, filepath.Join(d, "pg_dump"))
	}
	want := serverVersionNum / 10000
	var seen []string
	for _, c := range candidates {
		major, err := toolMajor(ctx, c)
		if err != nil {
			continue
		}
		if major >= want {
			return c, nil
		}
		seen = append(seen, fmt.Sprintf("%s (version %d)", c, major))
	}
	if len(seen) == 0 {
		return "", fmt.Errorf("pg_dump not found: install the PostgreSQL %d client (e.g. apt-get install postgresql-client-%d) or set PGLINK_PGBIN to its bin directory", want, want)
	}
	return "", fmt.Errorf("the source server is PostgreSQL %d and pg_dump must be at least as new, but only %s was found: install the PostgreSQL %d client or set PGLINK_PGBIN",
		want, strings.Join(seen, ", "), want)
}

func dirMajor(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

var toolVersionRE = regexp.MustCompile(`\) (\d+)(?:\.(\d+))?`)

// toolMajor runs "tool --version" ("pg_dump (PostgreSQL) 15.18 (Debian...)").
func toolMajor(ctx context.Context, path string) (int, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, err
	}
	m := toolVersionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("unexpected version output %q", out)
	}
	return strconv.Atoi(string(m[1]))
}

// splitPassword separates the password from a libpq connection string (URL
// or key=value), so the password can travel to pg_dump in PGPASSWORD and
// never appear in a command line, where other users of the machine could
// read it.
func splitPassword(connString string) (rest, password string, err error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", "", errors.New("the connection URL cannot be parsed")
		}
		if u.User != nil {
			if p, ok := u.User.Password(); ok {
				password = p
				u.User = url.User(u.User.Username())
			}
		}
		q := u.Query()
		if p := q.Get("password"); p != "" {
			password = p
			q.Del("password")
			u.RawQuery = q.Encode()
		}
		return u.String(), password, nil
	}
	pairs, err := parseKeywordValue(connString)
	if err != nil {
		return "", "", err
	}
	var kept []string
	for _, kv := range pairs {
		if kv[0] == "password" {
			password = kv[1]
			continue
		}
		kept = append(kept, kv[0]+"="+quoteConnValue(kv[1]))
	}
	return strings.Join(kept, " "), password, nil
}

// parseKeywordValue reads libpq's keyword = value format: values may be
// single-quoted, with \' and \\ escapes.
func parseKeywordValue(s string) ([][2]string, error) {
	var out [][2]string
	i := 0
	skipSpace := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') {
			i++
		}
	}
	for {
		skipSpace()
		if i >= len(s) {
			return out, nil
		}
		eq := strings.IndexByte(s[i:], '=')
		if eq < 0 {
			return nil, errors.New("the connection string has a keyword without '='")
		}
		key := strings.TrimSpace(s[i : i+eq])
		i += eq + 1
		skipSpace()
		var val strings.Builder
		if i < len(s) && s[i] == '\'' {
			i++
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("the connection string has an unterminated quoted value")
			}
			i++
		} else {
			for ; i < len(s) && s[i] != ' ' && s[i] != '\t' && s[i] != '\n'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				val.WriteByte(s[i])
			}
		}
		out = append(out, [2]string{key, val.String()})
	}
}

func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// parseConn reads a connection string as pglink's own sessions use it:
// with its keepalive settings applied by the dialer (pgx would send
// libpq's keepalive parameters to the server as settings, which it
// refuses) and without a password in the error.
func parseConn(side endpoint.Side, connString string) (*pgx.ConnConfig, error) {
	ep, err := endpoint.Parse(side, connString)
	if err != nil {
		return nil, err
	}
	return ep.Config, nil
}

// describeConn names a connection for messages without its password:
// user@host:port/db.
func describeConn(side, connString string) string {
	cfg, err := pgconn.ParseConfig(connString)
	if err != nil {
		return side
	}
	return fmt.Sprintf("%s %s@%s:%d/%s", side, cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// runPgDump runs pg_dump against the source and returns its SQL output.
// The password, if any, goes through PGPASSWORD; stderr is scrubbed of it
// all the same before it can reach an error message.
func runPgDump(ctx context.Context, pgDump, source string, args []string) ([]byte, error) {
	rest, password, err := splitPassword(source)
	if err != nil {
		return nil, fmt.Errorf("source connection string: %w", err)
	}
	cmd := exec.CommandContext(ctx, pgDump, append(args, "--dbname="+rest)...)
	cmd.Env = os.Environ()
	if password != "" {
		cmd.Env = append(cmd.Env, "PGPASSWORD="+password)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if password != "" {
			msg = strings.ReplaceAll(msg, password, "********")
		}
		return nil, fmt.Errorf("pg_dump of %s failed (%v): %s", describeConn("source", source), err, msg)
	}
	return stdout.Bytes(), nil
}
