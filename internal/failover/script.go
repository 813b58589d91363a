package failover

import (
	"fmt"
	"strings"

	"github.com/pglink/pglink/internal/state"
)

// Script renders the plan as a bash script that runs the same steps with
// psql. Connection strings come from PGLINK_SOURCE and PGLINK_TARGET, and
// passwords from the environment or the passfile: the script holds no
// secret. It is stable: the same plan gives the same script. A step that
// fails before the target takes writes runs the undo of the steps before.
func Script(p *Plan) string {
	var b strings.Builder
	fmt.Fprintf(&b, `#!/usr/bin/env bash
# %s failover of pglink link %s, as a script.
#
# Read it, then run it with the connection strings in the environment:
#   PGLINK_SOURCE='postgres://user@source-host/db' PGLINK_TARGET='postgres://user@target-host/db' bash THIS_FILE
# Passwords come from PGPASSWORD or ~/.pgpass, never from this file.
#
# Steps:
`, capitalize(p.Kind), p.Link)
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "#   %d. %s (%s): %s\n", i+1, st.Title, st.Side, st.What)
	}
	fmt.Fprintf(&b, `
set -euo pipefail
: "${PGLINK_SOURCE:?set PGLINK_SOURCE to the source connection string}"
: "${PGLINK_TARGET:?set PGLINK_TARGET to the target connection string}"
LINK=%s
src() { PGOPTIONS='-c client_min_messages=warning' psql "$PGLINK_SOURCE" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
# pglink's settings on the target: its sessions may write while the database is read-only.
tgt() { PGOPTIONS='-c client_min_messages=warning -c default_transaction_read_only=off -c session_replication_role=replica' psql "$PGLINK_TARGET" -X -q -At -v ON_ERROR_STOP=1 "$@"; }
step() { printf '\n== step %%s: %%s\n' "$1" "$2"; STEP_START=$SECONDS; }
ok() { printf '   done in %%ss: %%s\n' "$((SECONDS - STEP_START))" "$1"; }
die() { printf 'error: %%s\n' "$*" >&2; exit 1; }

# Undo: what the steps before the target takes writes changed is undone
# when a later step fails, in reverse order.
UNDO=()
COMMITTED=0
on_error() {
	trap - ERR EXIT
	if [ "$COMMITTED" = 1 ]; then
		echo "a step failed after the target took writes: nothing is undone; finish the remaining steps by hand" >&2
		exit 1
	fi
	for ((i = ${#UNDO[@]} - 1; i >= 0; i--)); do
		echo "undo: ${UNDO[i]}" >&2
		eval "${UNDO[i]}" || echo "undo failed: ${UNDO[i]}" >&2
	done
	echo "the failover failed; what it changed was undone" >&2
	exit 1
}
trap on_error ERR
trap 'on_error' EXIT
`, shellQuote(p.Link))
	for i, st := range p.Steps {
		fmt.Fprintf(&b, "\nstep %d %s\n", i+1, shellQuote(st.Title))
		b.WriteString(st.Script)
		if st.Commits {
			b.WriteString("COMMITTED=1\n")
		}
	}
	b.WriteString("\ntrap - ERR EXIT\necho\necho \"failover of link $LINK: done. Point the application at the target database.\"\n")
	return b.String()
}

// shellQuote quotes s for bash.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sqlArg quotes SQL for a bash single-quoted argument.
func sqlArg(sql string) string { return shellQuote(sql) }

func scriptPreflight(o Options) string {
	return fmt.Sprintf(`deadline=$((SECONDS + %[3]d))
while :; do
	row=$(tgt -c "SELECT phase, coalesce(pause_state, '-'), coalesce(lag_seconds, -1), now() - updated_at < interval '5 seconds' FROM pglink.links WHERE name = '$LINK'")
	IFS='|' read -r phase pause lag fresh <<<"$row"
	[ "$phase" = replicating ] || die "link $LINK is ${phase:-missing}, not replicating"
	[ "$pause" = - ] || die "a validation is pausing link $LINK; try again when it has ended"
	[ "$fresh" = t ] || die "no pglink process reports for link $LINK: run pglink start for it first"
	awk -v l="$lag" 'BEGIN { exit !(l >= 0 && l <= %[1]g) }' && break
	[ "$SECONDS" -lt "$deadline" ] || die "link $LINK still lags ${lag}s after %[4]s, more than %[2]s: try again at a quieter time"
	echo "   lag ${lag}s; waiting for it to fall under %[2]s before the source is fenced"
	sleep 1
done
[ "$(src -c "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'pglink_$LINK'")" = 1 ] || die "the slot pglink_$LINK is missing on the source"
[ "$(src -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'pglink_fence'")" = 0 ] || die "the source is fenced already: run pglink release-source first"
[ "$(tgt -c "UPDATE pglink.links SET phase = 'failing_over', failover_kind = 'planned', failover_step = 'begin (script)' WHERE name = '$LINK' AND phase = 'replicating' RETURNING 1")" = 1 ] || die "link $LINK changed phase"
UNDO+=("tgt -c \"UPDATE pglink.links SET phase = 'replicating', failover_kind = NULL, failover_step = NULL, pause_state = NULL, pause_at = NULL WHERE name = '\$LINK' AND phase = 'failing_over'\"")
ok "replicating, lag ${lag}s"
`, o.MaxLag.Seconds(), o.MaxLag, int(o.CatchUpTimeout.Seconds()+0.5), o.CatchUpTimeout)
}

func scriptFence() string {
	return fmt.Sprintf(`UNDO+=(%s)
src -c %s
src -c %s >/dev/null
for attempt in 1 2 3 4 5; do
	if src -c %s; then break; fi
	[ "$attempt" -lt 5 ] || die "the fence could not take the tables' locks"
	src -c %s >/dev/null
done
src -c %s
ok "the source refuses writes"
`, shellQuote("src -c "+shellQuote(unfenceSQL)), sqlArg(fenceSetupSQL), sqlArg(endSessionsSQL),
		sqlArg(fenceTablesSQL), sqlArg(endSessionsSQL), sqlArg(fenceCheckSQL))
}

func scriptUnfence() string {
	return fmt.Sprintf("src -c %s\nok \"the source takes writes again\"\n", sqlArg(unfenceSQL))
}

func scriptCatchUp(o Options) string {
	return fmt.Sprintf(`[ "$(tgt -c "UPDATE pglink.links SET pause_state = 'requested', pause_at = NULL, pause_requested_at = now() WHERE name = '$LINK' AND pause_state IS NULL RETURNING 1")" = 1 ] || die "a validation is pausing link $LINK"
UNDO+=("tgt -c \"UPDATE pglink.links SET pause_state = NULL, pause_at = NULL WHERE name = '\$LINK'\"")
deadline=$((SECONDS + %[1]d))
until [ "$(tgt -c "SELECT pause_state FROM pglink.links WHERE name = '$LINK'")" = holding ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "link $LINK did not hold within %[2]s: is it running?"
	src -c %[3]s >/dev/null
	sleep 0.1
done
END_LSN=$(src -c "SELECT pg_logical_emit_message(true, 'pglink', 'failover $LINK')::text")
[ "$(tgt -c "UPDATE pglink.links SET pause_state = 'at', pause_at = '$END_LSN', failover_lsn = '$END_LSN' WHERE name = '$LINK' AND pause_state = 'holding' RETURNING 1")" = 1 ] || die "link $LINK stopped holding"
until [ "$(tgt -c "SELECT pause_state FROM pglink.links WHERE name = '$LINK'")" = paused ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "the target did not catch up with $END_LSN within %[2]s"
	sleep 0.2
done
ok "every source transaction before $END_LSN is on the target"
`, int(o.Timeout.Seconds()+0.5), o.Timeout, sqlArg(state.NudgeSQL))
}

func scriptValidate(o Options) string {
	return `# The script compares row counts per table only; pglink failover --validate compares every row.
for t in $(tgt -c "SELECT format('%I.%I', table_schema, table_name) FROM pglink.tables WHERE link = '$LINK'"); do
	s=$(src -c "SELECT count(*) FROM $t"); d=$(tgt -c "SELECT count(*) FROM $t")
	[ "$s" = "$d" ] || die "table $t: $s rows on the source, $d on the target"
done
ok "row counts match"
`
}

func scriptSequences() string {
	return `src -c "SELECT format('SELECT setval(%L, %s, %L) WHERE to_regclass(%L) IS NOT NULL;', q, coalesce(last_value, start_value), last_value IS NOT NULL, q) FROM (SELECT format('%I.%I', schemaname, sequencename) AS q, last_value, start_value FROM pg_sequences WHERE schemaname !~ '^pg_' AND schemaname <> 'information_schema') s" | tgt >/dev/null
ok "sequences set to the source's values"
`
}

func scriptSequencesFromMaxima(o Options) string {
	return fmt.Sprintf(`tgt -c %s | tgt >/dev/null
ok "sequences set past their columns' maxima + %d"
`, sqlArg(`SELECT CASE WHEN seqincrement < 0 THEN '' WHEN tbl IS NULL
	THEN format('SELECT setval(%L, (SELECT last_value FROM %s) + `+fmt.Sprint(o.SequenceMargin)+`);', seq, seq)
	ELSE format('SELECT setval(%L, greatest((SELECT last_value FROM %s), coalesce((SELECT max(%I) FROM %s), 0)) + `+fmt.Sprint(o.SequenceMargin)+`);', seq, seq, col, tbl) END
FROM (`+strings.Replace(ownedSequencesSQL, "ORDER BY 1", "", 1)+`) AS s(seq, seqincrement, tbl, col)`), o.SequenceMargin)
}

func scriptMatViews(o Options) string {
	return fmt.Sprintf("tgt -c %s\nok \"materialized views refreshed\"\n", sqlArg(state.RefreshMatViewsSQL(o.Name)))
}

func scriptOpen(o Options) string {
	return fmt.Sprintf(`tgt -c "UPDATE pglink.links SET failover_step = 'open (script)' WHERE name = '$LINK'"
tgt -c %s
tgt -c %s
[ "$(psql "$PGLINK_TARGET" -X -At -c 'SHOW transaction_read_only')" = off ] || die "new sessions on the target are still read-only"
ok "the target takes writes"
`, sqlArg(state.UnguardSQL(o.Name)), sqlArg(`DO $d$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only', current_database()); END $d$`))
}

func scriptCut(o Options) string {
	return `tgt -c "UPDATE pglink.links SET phase = 'failed_over', failover_step = 'done', failover_at = now(), pause_state = NULL, pause_at = NULL WHERE name = '$LINK'"
` + scriptWaitStopped(o) + scriptSourceCleanup(o) + scriptTargetCleanup(o) + ok("link cut")
}

func scriptForcedCut(o Options) string {
	return `tgt -c "UPDATE pglink.links SET phase = 'failed_over', failover_step = 'done', failover_at = now() WHERE name = '$LINK'"
if PGCONNECT_TIMEOUT=3 src -c 'SELECT 1' >/dev/null 2>&1; then
` + indent(scriptSourceCleanup(o)) + `else
	echo "   the source does not answer: its slot pglink_$LINK is left; run pglink fence-source when it is back"
fi
` + scriptTargetCleanup(o) + ok("link cut")
}

func scriptWaitStopped(o Options) string {
	return fmt.Sprintf(`deadline=$((SECONDS + 30))
while [ "$(tgt -c %s)" = t ]; do
	[ "$SECONDS" -lt "$deadline" ] || die "the pglink process of link $LINK did not stop; stop it and run the rest by hand"
	sleep 0.2
done
`, sqlArg(strings.Join(strings.Fields(state.LeaseHeldSQL(o.Name)), " ")))
}

// scriptSourceCleanup drops the link's slots and DDL capture on the
// source, and with
// --cleanup its publication.
func scriptSourceCleanup(o Options) string {
	s := `src -c "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name IN ('pglink_$LINK', 'pglink_${LINK}_sync') AND active_pid IS NOT NULL" >/dev/null
sleep 1
src -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name IN ('pglink_$LINK', 'pglink_${LINK}_sync')" >/dev/null
src -c ` + sqlArg(state.UncaptureSQL(o.Name)) + ` >/dev/null
`
	if o.Cleanup {
		// The source is fenced: its sessions start read-only.
		s += `src -c "SET default_transaction_read_only = off" -c "DROP PUBLICATION IF EXISTS pglink_$LINK"
`
	}
	return s
}

// scriptTargetCleanup removes, with --cleanup, the link's replication
// origin and state on the target (and schema pglink with the last link);
// the data stays.
func scriptTargetCleanup(o Options) string {
	if !o.Cleanup {
		return ""
	}
	return `tgt -c "SELECT pg_replication_origin_drop(roname) FROM pg_replication_origin WHERE roname IN ('pglink_$LINK', 'pglink_$LINK.2')" >/dev/null
tgt -c "DELETE FROM pglink.links WHERE name = '$LINK'"
tgt -c "DO \$d\$ BEGIN IF NOT EXISTS (SELECT 1 FROM pglink.links) THEN DROP SCHEMA pglink CASCADE; END IF; END \$d\$"
`
}

func scriptForcedPreflight(o Options) string {
	return `row=$(tgt -c "SELECT l.phase, coalesce(p.applied_lsn::text, '-'), coalesce(l.server_wal_end::text, '-') FROM pglink.links l LEFT JOIN pglink.progress p ON p.link = l.name WHERE l.name = '$LINK'")
IFS='|' read -r phase applied known <<<"$row"
case "$phase" in replicating|broken) ;; *) die "link $LINK is ${phase:-missing}: a forced failover needs a seeded link";; esac
echo "   the target has applied the source up to $applied; the last source position known was $known"
[ "$(tgt -c "UPDATE pglink.links SET phase = 'failing_over', failover_kind = 'forced', failover_step = 'begin (script)' WHERE name = '$LINK' AND phase IN ('replicating', 'broken') RETURNING 1")" = 1 ] || die "link $LINK changed phase"
ok "link checked"
`
}

func scriptStop(o Options) string {
	return scriptWaitStopped(o) + ok("link stopped")
}

func ok(msg string) string { return "ok " + shellQuote(msg) + "\n" }

func indent(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "\t" + l
	}
	return strings.Join(lines, "\n") + "\n"
}
