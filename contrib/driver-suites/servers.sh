# shellcheck shell=bash disable=SC2154 # its inputs are set by the script that sources it
# Sourced by the scripts beside it: two identical PostgreSQL clusters and one
# pgwing in front of the second, all on 127.0.0.1 (README.md).
#
# In:  suite_name, bin (pgwing), keep (non-empty: keep the work dir),
#      PG_BINDIR, PGWING_TEST_USER, PGWING_SETTINGS (more lines for pgwing's
#      [pgwing] section, e.g. "server_release = always": a move at every idle
#      point).
# Out: work (a fresh dir, removed on exit unless keep), user, asuser (the
#      command prefix that runs as user), password, directport (the first
#      cluster), rwport (pgwing); the servers are stopped on exit.

work=$(mktemp -d "/tmp/pgwing-$suite_name.XXXXXX")
asuser=()
if [ "$(id -u)" = 0 ]; then
	user=${PGWING_TEST_USER:-pgwingtest}
	id "$user" >/dev/null 2>&1 || { echo "$suite_name: no user $user (contrib/setup.sh test)" >&2; exit 2; }
	asuser=(runuser -u "$user" --)
	chown "$user" "$work"
else
	user=$(id -un)
fi
pwpid=
cleanup() {
	[ -z "$pwpid" ] || kill "$pwpid" 2>/dev/null || true
	local d
	for d in direct pgwing; do
		[ ! -f "$work/$d/postmaster.pid" ] ||
			"${asuser[@]}" "$PG_BINDIR/pg_ctl" -D "$work/$d" -m immediate stop >/dev/null 2>&1 || true
	done
	if [ -n "$keep" ]; then echo "$suite_name: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
password=$suite_name-$RANDOM$RANDOM
echo "$password" >"$work/pwfile"
chmod -R a+rX "$work"
chown "$user" "$work" "$work/pwfile"

# Two identical clusters, one per run, so that the runs can go side by side
# (prepared transactions' gids are cluster-wide).
cluster() {
	local name=$1 port=$2
	"${asuser[@]}" "$PG_BINDIR/initdb" -D "$work/$name" -U "$user" --pwfile="$work/pwfile" \
		--auth-local=trust --auth-host=scram-sha-256 >"$work/initdb-$name.log"
	cat >>"$work/$name/postgresql.conf" <<-EOC
		listen_addresses = '127.0.0.1'
		port = $port
		unix_socket_directories = '$work'
		max_connections = 200
		max_prepared_transactions = 10
	EOC
	"${asuser[@]}" "$PG_BINDIR/pg_ctl" -D "$work/$name" -l "$work/postgres-$name.log" -w start >/dev/null
}
directport=$(freeport)
backport=$(freeport)
rwport=$(freeport)
roport=$(freeport)
cluster direct "$directport"
cluster pgwing "$backport"

cat >"$work/pgwing.ini" <<-EOC
	[pgwing]
	listen_addr = 127.0.0.1
	rw_port = $rwport
	ro_port = $roport
	unix_socket_dir =
	auth_file = $work/userlist.txt
	health_user = $user
	${PGWING_SETTINGS:-}

	[backends]
	pg = host=127.0.0.1 port=$backport
EOC
echo "\"$user\" \"$password\"" >"$work/userlist.txt"
chown "$user" "$work/pgwing.ini" "$work/userlist.txt"
chmod 600 "$work/userlist.txt"
"${asuser[@]}" "$bin" "$work/pgwing.ini" >"$work/pgwing.log" 2>&1 &
pwpid=$!
for _ in $(seq 100); do
	PGPASSWORD=$password psql -XAtq -h 127.0.0.1 -p "$rwport" -U "$user" -d postgres \
		-c 'select 1' >/dev/null 2>&1 && break
	sleep 0.1
done
