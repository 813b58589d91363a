package seed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pglink/pglink/internal/endpoint"
)

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
