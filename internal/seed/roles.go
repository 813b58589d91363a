package seed

import (
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/pglink/pglink/internal/quote"
)

// Report says what a schema copy left out.
type Report struct {
	// MissingRoles are roles the source's owners and grants name that do
	// not exist on the target (pglink does not copy roles).
	MissingRoles []string
	// Skipped describes each statement or object left out, and why.
	Skipped []string
}

func (r *Report) skip(what string) { r.Skipped = append(r.Skipped, what) }

func (r *Report) missing(role string) {
	for _, m := range r.MissingRoles {
		if m == role {
			return
		}
	}
	r.MissingRoles = append(r.MissingRoles, role)
	sort.Strings(r.MissingRoles)
}

const identPat = `("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`

// The role-naming statements pg_dump writes, one role per statement (it
// writes one GRANT per grantee); each pattern captures the role names.
// They are compiled on first use: every pglink command would pay for them
// at start otherwise.
var roleREs = sync.OnceValue(func() []*regexp.Regexp {
	return []*regexp.Regexp{
		regexp.MustCompile(`(?is)^ALTER\s.*\sOWNER\s+TO\s+` + identPat + `$`),
		regexp.MustCompile(`(?is)^(?:ALTER DEFAULT PRIVILEGES\s.*\s)?GRANT\s.*\sTO\s+` + identPat +
			`(?:\s+WITH\s+(?:GRANT|ADMIN)\s+OPTION)?(?:\s+GRANTED\s+BY\s+` + identPat + `)?$`),
		regexp.MustCompile(`(?is)^(?:ALTER DEFAULT PRIVILEGES\s.*\s)?REVOKE\s.*\sFROM\s+` + identPat +
			`(?:\s+GRANTED\s+BY\s+` + identPat + `)?(?:\s+CASCADE|\s+RESTRICT)?$`),
		regexp.MustCompile(`(?is)^ALTER DEFAULT PRIVILEGES\s+FOR\s+(?:ROLE|USER)\s+` + identPat + `\s`),
	}
})

// namedRoles returns the roles a GRANT, REVOKE, ALTER DEFAULT PRIVILEGES or
// ALTER ... OWNER TO statement names, unquoted, leaving out PUBLIC and
// CURRENT_USER-like specifications; nil for other statements.
func namedRoles(sql string) []string {
	var roles []string
	for _, re := range roleREs() {
		m := re.FindStringSubmatch(sql)
		for _, g := range m[min(1, len(m)):] {
			if g != "" && !pseudoRoles[strings.ToLower(g)] {
				roles = append(roles, unquoteIdent(g))
			}
		}
	}
	return roles
}

func unquoteIdent(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return strings.ToLower(s)
}

// pseudoRoles are the role specifications that are not role names (when
// not quoted).
var pseudoRoles = map[string]bool{"public": true, "current_user": true, "session_user": true, "current_role": true}

// dropMissingRoles removes the statements that name a role the target does
// not have, since each would fail and abort the schema copy, and reports
// them; every other statement is kept as pg_dump wrote it.
func dropMissingRoles(stmts []statement, targetRoles map[string]bool, rep *Report) []statement {
	kept := stmts[:0:0]
	for _, s := range stmts {
		var missing []string
		for _, r := range namedRoles(s.SQL) {
			if !targetRoles[r] {
				missing = append(missing, r)
			}
		}
		if len(missing) == 0 {
			kept = append(kept, s)
			continue
		}
		for _, r := range missing {
			rep.missing(r)
		}
		rep.skip(s.label() + ": role " + strings.Join(missing, ", ") + " does not exist on the target: " + quote.FirstLine(s.SQL, 200))
	}
	return kept
}

// actingRoles returns the roles a statement makes the target user act as:
// the new owner of ALTER ... OWNER TO, and the role of ALTER DEFAULT
// PRIVILEGES FOR ROLE. Only a member of such a role may run it.
func actingRoles(sql string) []string {
	var roles []string
	for _, re := range []*regexp.Regexp{roleREs()[0], roleREs()[3]} {
		if m := re.FindStringSubmatch(sql); m != nil && !pseudoRoles[strings.ToLower(m[1])] {
			roles = append(roles, unquoteIdent(m[1]))
		}
	}
	return roles
}

// dropForeignOwners removes the statements that make the target user act
// as a role it is no member of, which the target would refuse (a managed
// service's admin role is no superuser, and the source's owner is often
// one): the objects stay owned by the user that links, as reported.
func dropForeignOwners(stmts []statement, member map[string]bool, rep *Report) []statement {
	kept := stmts[:0:0]
	for _, s := range stmts {
		var foreign []string
		for _, r := range actingRoles(s.SQL) {
			if !member[r] {
				foreign = append(foreign, r)
			}
		}
		if len(foreign) == 0 {
			kept = append(kept, s)
			continue
		}
		rep.skip(s.label() + ": the target user is not a member of role " + strings.Join(foreign, ", ") +
			", so the object stays owned by the user that links: " + quote.FirstLine(s.SQL, 200))
	}
	return kept
}
