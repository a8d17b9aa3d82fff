#!/bin/bash
# pgwing on a fresh Debian 12 machine, from a clone of the repository.
#
#   contrib/setup.sh demo    install packages, build, run a demo primary with one
#                            streaming replica and pgwing in front; Ctrl-C stops all
#   contrib/setup.sh test    install packages, build, make check (unit, format, TAP),
#                            make check-regress (PostgreSQL's regression suite: direct, then
#                            through pgwing in the default, forced-move and split modes),
#                            then make check-sanitizers (unit and TAP on an ASan+UBSan
#                            build) and make check-valgrind (a short TAP suite under
#                            valgrind); fails if any of them fails
#   contrib/setup.sh deps    only install the Debian packages
#   contrib/setup.sh build   only build (autoreconf, configure, make)
#
# Runs as root or as a user with sudo (used for apt-get and, for the demo, nothing
# else). PostgreSQL refuses to run as root, so as root the demo servers run as the
# system user $DEMO_USER (default pgwingdemo) and the tests as pgwingtest.
#
# Demo ports (environment): RW_PORT=5432 RO_PORT=5433 PRIMARY_PORT=6442
# REPLICA_PORT=6443. Demo data lives in a temp dir removed on exit.
set -euo pipefail

srcdir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_BINDIR=${PG_BINDIR:-/usr/lib/postgresql/15/bin}
# pgbouncer and gnuplot-nox are for `make bench` (contrib/bench), which compares
# pgwing with PgBouncer; the demo's backends stay off PgBouncer's default 6432.
PACKAGES=(build-essential autoconf automake libtool pkg-config libevent-dev libssl-dev
	libpq-dev libidn-dev libcmocka-dev libsystemd-dev postgresql-15 postgresql-server-dev-15
	postgresql-client-15 libipc-run-perl libhttp-daemon-perl libnet-dns-perl openssl curl
	clang-format valgrind iproute2
	clang libclang-rt-14-dev llvm pgbouncer gnuplot-nox)

say() { printf '\n== %s\n' "$*"; }

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		echo "setup.sh: need root or sudo for: $*" >&2
		exit 1
	fi
}

deps() {
	local missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "packages: all installed"
		return
	fi
	say "installing ${missing[*]}"
	as_root apt-get update
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		"${PACKAGES[@]}"
}

build() {
	say "building pgwing in $srcdir"
	cd "$srcdir"
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
		autoreconf -fi
	fi
	[ -f Makefile ] || ./configure
	make -j"$(nproc)"
}

# All three passes run even when one fails, so one run shows every failure.
run_tests() {
	local rc=0
	cd "$srcdir"
	say "make check (unit tests, clang-format, fuzz targets, TAP tests on PostgreSQL 15)"
	# As root, the TAP tests run as the user pgwingtest: the user asked for
	# the tests, so run-tap may create it (a packager's make check does not).
	export PGWING_TEST_CREATE_USER=yes
	# CI's budget is 30 minutes on two cores. The TAP files mostly wait (on
	# Postgres starting, timeouts, sleeps): at -j2 the plain and ASan passes
	# kept the cores about 40 % busy, so three run at once; --timer prints
	# each file's time, to see where the budget goes. 10 s per fuzz target
	# (a regression check of the corpus and a little search; the budget has
	# no room for more); a longer campaign is make fuzz-check FUZZ_SECONDS=600.
	export PROVE_FLAGS=${PROVE_FLAGS:--j3 --timer}
	FUZZ_SECONDS=${FUZZ_SECONDS:-10} make check || rc=1
	say "make check-regress (PostgreSQL's regression suite, directly and through pgwing)"
	# One direct run, then each mode once (default, forced-move, split: about
	# 1.5 min each); a difference not in tests/regress/expected-differences
	# fails. In this pass only: the sanitizer and valgrind passes would run it
	# at a fraction of the speed.
	REGRESS_MODES=${REGRESS_MODES:-default forced split} make check-regress || rc=1
	say "make check-sanitizers (the same on an ASan+UBSan build in build-sanitizers/)"
	make check-sanitizers || rc=1
	say "make check-valgrind (a short TAP suite with pgwing under valgrind)"
	# Under valgrind pgwing itself keeps a core busy: two at a time.
	PROVE_FLAGS=-j2 make check-valgrind || rc=1
	return $rc
}

port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

demo() {
	local rw=${RW_PORT:-5432} ro=${RO_PORT:-5433}
	local pport=${PRIMARY_PORT:-6442} rport=${REPLICA_PORT:-6443}
	# Globals, not locals: the EXIT trap runs after demo() returns.
	user='' bin=$srcdir/src/pgwing run=() dir='' pgwing_pid=
	for p in "$rw" "$ro" "$pport" "$rport"; do
		if ! port_free "$p"; then
			echo "setup.sh: port $p is in use (a system PostgreSQL? see pg_lsclusters)." >&2
			echo "Stop it, or pick other ports: RW_PORT, RO_PORT, PRIMARY_PORT, REPLICA_PORT." >&2
			exit 1
		fi
	done
	if [ "$(id -u)" = 0 ]; then
		user=${DEMO_USER:-pgwingdemo}
		id "$user" >/dev/null 2>&1 ||
			useradd --system --no-create-home --home-dir /nonexistent \
				--shell /usr/sbin/nologin "$user"
		run=(runuser -u "$user" --)
	else
		user=$(id -un)
	fi
	dir=$(mktemp -d /tmp/pgwing-demo.XXXXXX)
	chmod 755 "$dir"
	[ "$(id -u)" = 0 ] && chown "$user" "$dir"
	if ! "${run[@]}" test -x "$bin"; then
		cp "$bin" "$dir/pgwing" && chmod 755 "$dir/pgwing"
		bin=$dir/pgwing
	fi
	cleanup() {
		trap - INT TERM EXIT
		say "stopping"
		[ -n "$pgwing_pid" ] && kill -INT "$pgwing_pid" 2>/dev/null && wait "$pgwing_pid" 2>/dev/null
		for d in replica primary; do
			[ -f "$dir/$d/postmaster.pid" ] &&
				"${run[@]}" "$PG_BINDIR/pg_ctl" -D "$dir/$d" -m fast -w stop >/dev/null
		done
		rm -rf "$dir"
		echo "demo stopped, $dir removed"
	}
	trap cleanup INT TERM EXIT

	say "primary on 127.0.0.1:$pport, data in $dir/primary"
	"${run[@]}" "$PG_BINDIR/initdb" -D "$dir/primary" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 >"$dir/initdb.log"
	cat >>"$dir/primary/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pport
unix_socket_directories = '$dir'
wal_level = replica
max_wal_senders = 5
hot_standby = on
EOF
	cat >"$dir/primary/pg_hba.conf" <<EOF
local all all trust
host all postgres 127.0.0.1/32 trust
host replication postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
EOF
	"${run[@]}" "$PG_BINDIR/pg_ctl" -D "$dir/primary" -l "$dir/primary.log" -w start >/dev/null
	"${run[@]}" "$PG_BINDIR/psql" -X -q -h "$dir" -p "$pport" -U postgres -d postgres \
		-c "CREATE ROLE demo LOGIN PASSWORD 'demo'" -c "CREATE DATABASE demo OWNER demo" \
		-c "CREATE ROLE admin LOGIN PASSWORD 'admin' SUPERUSER"

	say "replica on 127.0.0.1:$rport, streaming from the primary"
	"${run[@]}" "$PG_BINDIR/pg_basebackup" -h 127.0.0.1 -p "$pport" -U postgres \
		-D "$dir/replica" -R -X stream -c fast
	sed -i "s/^port = $pport/port = $rport/" "$dir/replica/postgresql.conf"
	"${run[@]}" "$PG_BINDIR/pg_ctl" -D "$dir/replica" -l "$dir/replica.log" -w start >/dev/null

	cat >"$dir/userlist.txt" <<EOF
"demo" "demo"
"admin" "admin"
EOF
	cat >"$dir/pgwing.ini" <<EOF
[pgwing]
listen_addr = 127.0.0.1
rw_port = $rw
ro_port = $ro
unix_socket_dir = $dir
auth_type = scram-sha-256
auth_file = userlist.txt
admin_users = admin
health_user = postgres
health_interval = 1s

[backends]
primary = host=127.0.0.1 port=$pport region=local
replica = host=127.0.0.1 port=$rport region=local
EOF
	chmod 600 "$dir/userlist.txt"
	[ "$(id -u)" = 0 ] && chown "$user" "$dir"/*.txt "$dir"/*.ini

	say "pgwing on 127.0.0.1:$rw (read-write) and :$ro (read-only), config $dir/pgwing.ini"
	"${run[@]}" "$bin" "$dir/pgwing.ini" &
	pgwing_pid=$!
	for _ in $(seq 100); do
		port_free "$rw" || break
		kill -0 "$pgwing_pid" 2>/dev/null || { echo "pgwing exited" >&2; exit 1; }
		sleep 0.1
	done
	cat <<EOF

pgwing is running. In another terminal try (password: demo):

  psql "host=127.0.0.1 port=$rw user=demo password=demo dbname=demo"    # read-write: the primary
  psql "host=127.0.0.1 port=$ro user=demo password=demo dbname=demo"    # read-only: the replica
      SELECT pg_is_in_recovery(), inet_server_port();
  psql "host=127.0.0.1 port=$rw user=admin password=admin dbname=pgwing" -c 'SHOW BACKENDS'
  pgbench -i "host=127.0.0.1 port=$rw user=demo password=demo dbname=demo"

Logs: pgwing below; servers in $dir/primary.log and $dir/replica.log.
Press Ctrl-C to stop everything.

EOF
	wait "$pgwing_pid" || true
	pgwing_pid=''
}

case ${1:-} in
deps) deps ;;
build) deps && build ;;
test) deps && build && run_tests ;;
demo) deps && build && demo ;;
*)
	sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
	exit 2
	;;
esac
