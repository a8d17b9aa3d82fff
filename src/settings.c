/*
 * The table of settings and the syntax of their values.
 *
 * Every value, whether it is a built-in default, a line of the file, an
 * environment variable or the console's SET, goes through settings_apply(),
 * so all of them obey the same syntax and the same ranges.
 */
#include "pgwing/settings.h"

#include "pgwing/config.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>

#define SECOND_MS    ((int64_t)1000)
#define MINUTE_MS    (60 * SECOND_MS)
#define HOUR_MS      (60 * MINUTE_MS)
/*
 * Nothing pgwing waits for should take longer than a day, and the cap keeps
 * timer arithmetic (timevals, sums of timeouts) far from overflow.
 */
#define DURATION_MAX (24 * HOUR_MS)

#define KB ((int64_t)1024)
#define MB (1024 * KB)
#define GB (1024 * MB)

#define NO_MAX   INT64_MAX
#define PORT_MAX SETTINGS_PORT_MAX
/* The socket file is "<dir>/.s.PGSQL.<port>", which must fit in sun_path with its NUL. */
#define UNIX_SOCKET_DIR_MAX \
	(sizeof(((struct sockaddr_un *)0)->sun_path) - sizeof("/.s.PGSQL.65535"))

/* A socket path, with its NUL, fits in sun_path. */
#define TAKEOVER_SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/*
 * The table stores fields by offset, so a setting whose type disagrees with
 * its field would write the wrong width. FIELD() checks the field at compile
 * time: a false condition makes a negative array size and fails the build.
 */
#define FIELD(f, is_ok) (offsetof(struct config, f) + 0 * sizeof(char[(is_ok) ? 1 : -1]))
#define FIELD_TYPE(f)   __typeof__(((struct config *)0)->f)
#define STRING_FIELD(f) FIELD(f, __builtin_types_compatible_p(FIELD_TYPE(f), char *))
#define INT_FIELD(f)    FIELD(f, __builtin_types_compatible_p(FIELD_TYPE(f), int))
#define MS_FIELD(f)     FIELD(f, __builtin_types_compatible_p(FIELD_TYPE(f), int64_t))
#define ENUM_FIELD(f)   FIELD(f, sizeof(FIELD_TYPE(f)) == sizeof(int))
#define BOOL_FIELD(f)   FIELD(f, __builtin_types_compatible_p(FIELD_TYPE(f), bool))

static const char *const auth_type_names[] = {
	[AUTH_TRUST] = "trust",
	[AUTH_PLAIN] = "plain",
	[AUTH_MD5] = "md5",
	[AUTH_SCRAM] = "scram-sha-256",
	NULL,
};

static const char *const tls_mode_names[] = {
	[TLS_DISABLE] = "disable",
	[TLS_ALLOW] = "allow",
	[TLS_PREFER] = "prefer",
	[TLS_REQUIRE] = "require",
	[TLS_VERIFY_CA] = "verify-ca",
	[TLS_VERIFY_FULL] = "verify-full",
	NULL,
};

static const char *const ro_fallback_names[] = {
	[RO_FALLBACK_PRIMARY] = "primary",
	[RO_FALLBACK_ERROR] = "error",
	NULL,
};

static const char *const log_format_names[] = {
	[LOG_FORMAT_TEXT] = "text",
	[LOG_FORMAT_JSON] = "json",
	NULL,
};

static const char *const wake_for_reads_names[] = {
	[WAKE_FOR_READS_NEAREST] = "nearest",
	[WAKE_FOR_READS_NEVER] = "never",
	[WAKE_FOR_READS_ALWAYS] = "always",
	NULL,
};

static const char *const server_release_names[] = {
	[SERVER_RELEASE_DEMAND] = "demand",
	[SERVER_RELEASE_ALWAYS] = "always",
	NULL,
};

static const char *const move_check_names[] = {
	[MOVE_CHECK_FUNCTIONS] = "functions",
	[MOVE_CHECK_WRITES] = "writes",
	NULL,
};

static const struct setting settings[] = {
	{
		.name = "listen_addr",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(listen_addr),
		.default_value = "127.0.0.1",
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "TCP addresses to listen on, comma-separated; * for all.",
	},
	{
		.name = "rw_port",
		.type = SETTING_INT,
		.offset = INT_FIELD(rw_port),
		.default_value = "5432",
		.min_value = 1,
		.max_value = PORT_MAX,
		.doc = "Port for read-write clients, routed to the primary.",
	},
	{
		.name = "ro_port",
		.type = SETTING_INT,
		.offset = INT_FIELD(ro_port),
		.default_value = "5433",
		.min_value = 1,
		.max_value = PORT_MAX,
		.doc = "Port for read-only clients, routed to the nearest healthy replica.",
	},
	{
		.name = "unix_socket_dir",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(unix_socket_dir),
		.default_value = "/tmp",
		.min_value = 0,
		.max_value = UNIX_SOCKET_DIR_MAX,
		.is_path = true,
		.doc = "Directory for the unix sockets (.s.PGSQL.<port>); empty disables them.",
	},
	{
		.name = "listen_backlog",
		.type = SETTING_INT,
		.offset = INT_FIELD(listen_backlog),
		.default_value = "4096",
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Connections the kernel queues before pgwing accepts them (capped by "
		       "net.core.somaxconn); a login storm beyond it waits for SYN retries.",
	},
	{
		.name = "so_reuseport",
		.type = SETTING_BOOL,
		.offset = BOOL_FIELD(so_reuseport),
		.default_value = "off",
		.doc = "Share the TCP ports with other pgwing processes that also set it (one per "
		       "core); off refuses to start while anything else holds them.",
	},
	{
		.name = "auth_type",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(auth_type),
		.default_value = "scram-sha-256",
		.is_reloadable = true,
		.enum_names = auth_type_names,
		.doc = "How pgwing authenticates clients.",
	},
	{
		.name = "auth_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(auth_file),
		.default_value = "userlist.txt",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "File of users with their passwords or SCRAM secrets.",
	},
	{
		.name = "auth_user",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(auth_user),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "User that looks up, with auth_query, the secret of a user missing from "
		       "auth_file; empty turns the lookup off.",
	},
	{
		.name = "auth_query",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(auth_query),
		.default_value =
			"SELECT usename, passwd FROM pg_catalog.pg_shadow WHERE usename = $1",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "Query returning a user's name and stored password ($1: the user name), run "
		       "on the primary with search_path = pg_catalog, pg_temp.",
	},
	{
		.name = "auth_dbname",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(auth_dbname),
		.default_value = "postgres",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "Database auth_user connects to for auth_query.",
	},
	{
		.name = "auth_cache_ttl",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(auth_cache_ttl_ms),
		.default_value = "60s",
		.is_reloadable = true,
		.max_value = DURATION_MAX,
		.doc = "How long a looked-up secret (or the absence of a user) is reused; 0 looks "
		       "up at every login.",
	},
	{
		.name = "auth_cache_size",
		.type = SETTING_INT,
		.offset = INT_FIELD(auth_cache_size),
		.default_value = "10000",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Most users, known or not, whose lookup is remembered; the oldest goes "
		       "first.",
	},
	{
		.name = "admin_users",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(admin_users),
		.default_value = "admin",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Users who may run any command in the pgwing admin database, "
		       "comma-separated.",
	},
	{
		.name = "stats_users",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(stats_users),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Users who may run SHOW commands in the pgwing admin database, "
		       "comma-separated.",
	},
	{
		.name = "admin_trust_tcp",
		.type = SETTING_BOOL,
		.offset = BOOL_FIELD(admin_trust_tcp),
		.default_value = "off",
		.is_reloadable = true,
		.doc = "Let auth_type = trust log in to the admin database over TCP too; off asks "
		       "there for the auth file's password (SCRAM).",
	},
	{
		.name = "max_client_conn",
		.type = SETTING_INT,
		.offset = INT_FIELD(max_client_conn),
		.default_value = "10000",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Most client connections at once; beyond it clients get SQLSTATE 53300.",
	},
	{
		.name = "max_packet_size",
		.type = SETTING_SIZE,
		.offset = MS_FIELD(max_packet_size),
		.default_value = "64MB",
		.is_reloadable = true,
		.min_value = KB,
		.max_value = GB,
		.doc = "Largest protocol message accepted from a client or a server.",
	},
	{
		.name = "forward_buffer_size",
		.type = SETTING_SIZE,
		.offset = MS_FIELD(forward_buffer_size),
		.default_value = "256kB",
		.is_reloadable = true,
		.min_value = 16 * KB,
		.max_value = GB,
		.doc = "Bytes queued for a slow reader, client or server, before pgwing stops "
		       "reading from the other side; it reads again below a quarter of it.",
	},
	{
		.name = "max_session_sql_size",
		.type = SETTING_SIZE,
		.offset = MS_FIELD(max_session_sql_size),
		.default_value = "64kB",
		.is_reloadable = true,
		.min_value = KB,
		.max_value = GB,
		.doc = "Most text of session-changing statements (SET, PREPARE, ...) one "
		       "transaction "
		       "may add to what a move replays; a transaction that adds more keeps its "
		       "session on its server.",
	},
	{
		.name = "server_connect_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(server_connect_timeout_ms),
		.default_value = "5s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "Time allowed to connect and log in to a backend.",
	},
	{
		.name = "server_tcp_keepalive",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(server_tcp_keepalive_ms),
		.default_value = "10s",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = 9 * HOUR_MS, /* under Linux's TCP_KEEPIDLE limit, 32767 s */
		.doc = "Silence on a TCP server connection before pgwing sends keepalive probes "
		       "(then every third of it, 3 unanswered end it); rounded up to seconds; 0 "
		       "disables.",
	},
	{
		.name = "server_tcp_user_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(server_tcp_user_timeout_ms),
		.default_value = "20s",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "How long data sent to a backend, or keepalive probes, may go "
		       "unacknowledged before the TCP connection is given up as lost "
		       "(TCP_USER_TIMEOUT); 0 disables.",
	},
	{
		.name = "client_login_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(client_login_timeout_ms),
		.default_value = "60s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "Time a client has to finish its startup and authentication.",
	},
	{
		.name = "hold_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(hold_timeout_ms),
		.default_value = "30s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "How long a client waits for a server (full pool, failover, wake-up) before "
		       "an error.",
	},
	{
		.name = "server_reset_query",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(server_reset_query),
		.default_value = "DISCARD ALL",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Query run on a server its client gave back, before another client may use "
		       "it; empty runs none (the next client may see the last one's session "
		       "state).",
	},
	{
		.name = "server_reset_always",
		.type = SETTING_BOOL,
		.offset = BOOL_FIELD(server_reset_always),
		.default_value = "off",
		.is_reloadable = true,
		.doc = "Run server_reset_query even on a server whose sessions, since its last "
		       "reset, ran only provably read-only statements (which leave nothing "
		       "behind, so by default the next client gets it at once). Turn it on if "
		       "a view, operator or cast calls a function of yours that changes session "
		       "state: the classifier can't see those calls.",
	},
	{
		.name = "default_pool_size",
		.type = SETTING_INT,
		.offset = INT_FIELD(default_pool_size),
		.default_value = "20",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = INT_MAX,
		.doc = "Most server connections of one pool (database, user and port), pooled "
		       "ones included; beyond it clients wait for one while idle sessions give "
		       "theirs back; 0 for no limit.",
	},
	{
		.name = "server_release",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(server_release),
		.default_value = "demand",
		.is_reloadable = true,
		.enum_names = server_release_names,
		.doc = "When a session gives its server connection back between transactions: "
		       "demand (when other sessions of its pool wait, after server_idle_timeout, "
		       "on PAUSE, RECONNECT and re-routing) or always (at every idle point whose "
		       "state can move: each transaction may run on another server connection, "
		       "with the session's state carried; it costs a reset and a replay per "
		       "transaction and is meant for testing that moves are exact).",
	},
	{
		.name = "move_check",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(move_check),
		.default_value = "functions",
		.is_reloadable = true,
		.enum_names = move_check_names,
		.doc = "When a session that ran more than reads gives its server connection back, "
		       "pgwing first asks that server what the session holds (see What a move "
		       "keeps): functions (if since the last check it called a function that is "
		       "not one of Postgres's built-in read-only ones, DO, CALL or EXECUTE, or "
		       "holds a prepared statement that does) or writes (after anything not "
		       "provably read-only: also catches what triggers and column defaults did, at "
		       "one round trip per hand-over of a writing session).",
	},
	{
		.name = "reserve_pool_size",
		.type = SETTING_INT,
		.offset = INT_FIELD(reserve_pool_size),
		.default_value = "0",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = INT_MAX,
		.doc = "Servers a full pool may open beyond default_pool_size, one for each "
		       "client that has waited reserve_pool_timeout; one given back while nobody "
		       "waits is closed; 0 for none.",
	},
	{
		.name = "reserve_pool_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(reserve_pool_timeout_ms),
		.default_value = "5s",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "How long a client waits in a full pool before the reserve opens for it; "
		       "0 turns the reserve off.",
	},
	{
		.name = "pool_idle_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(pool_idle_timeout_ms),
		.default_value = "1h",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "Free a pool that has had no client and no server this long (one whose "
		       "logins all failed goes at once); 0 keeps them.",
	},
	{
		.name = "server_lifetime",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(server_lifetime_ms),
		.default_value = "1h",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "Close a pooled server connection older than this instead of reusing it; 0 "
		       "disables.",
	},
	{
		.name = "logfile",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(logfile),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "File to log to; empty logs to stderr.",
	},
	{
		.name = "log_format",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(log_format),
		.default_value = "text",
		.is_reloadable = true,
		.enum_names = log_format_names,
		.doc = "text: one line per message; json: one JSON object per line (time, pid, "
		       "level, client or server id, message) for log shippers.",
	},
	{
		.name = "pidfile",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(pidfile),
		.default_value = "",
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "File to write the process id to; empty writes none.",
	},
	{
		.name = "shutdown_grace",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(shutdown_grace_ms),
		.default_value = "0",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "After SIGTERM, how long new clients are still accepted (while /readyz "
		       "already says 503), for an orchestrator slow to stop sending them.",
	},
	{
		.name = "shutdown_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(shutdown_timeout_ms),
		.default_value = "25s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "After SIGTERM, how long clients may take to finish their transactions; "
		       "then queries still running are cancelled and every client gets 57P01.",
	},
	{
		.name = "takeover_socket",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(takeover_socket),
		.default_value = "",
		.min_value = 0,
		.max_value = TAKEOVER_SOCKET_MAX,
		.is_path = true,
		.doc = "Unix socket on which the running pgwing hands its sockets and clients to "
		       "`pgwing --takeover` (mode 0600, own user only); empty: "
		       "`<unix_socket_dir>/.s.PGSQL.<rw_port>.takeover`, or no takeover without "
		       "unix_socket_dir.",
	},
	{
		.name = "region",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(region),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Region pgwing runs in; read-only clients prefer replicas in it.",
	},
	{
		.name = "primary_region",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(primary_region),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Region the primary is meant to run in (PRIMARY_REGION sets it). Of the "
		       "replicas that are equally near for a read-only client (same region and "
		       "round-trip time), one in this region gets it: it replays nearest to the "
		       "primary, so its reads are the least stale. SHOW STATE shows it; empty "
		       "prefers none.",
	},
	{
		.name = "health_interval",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(health_interval_ms),
		.default_value = "1s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "Time between two health probes of a backend.",
	},
	{
		.name = "health_interval_holding",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(health_interval_holding_ms),
		.default_value = "250ms",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "Time between two health probes of a backend while clients are held for a "
		       "primary and none is known (after the primary failed, until a promotion is "
		       "seen or the hold ends): a promotion that no probe hinted at is seen this "
		       "soon. Never slower than health_interval.",
	},
	{
		.name = "health_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(health_timeout_ms),
		.default_value = "2s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "Time a health probe may take before it counts as a failure.",
	},
	{
		.name = "health_fail_count",
		.type = SETTING_INT,
		.offset = INT_FIELD(health_fail_count),
		.default_value = "2",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Failed probes in a row before a backend is marked down.",
	},
	{
		.name = "health_rise_count",
		.type = SETTING_INT,
		.offset = INT_FIELD(health_rise_count),
		.default_value = "1",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Successful probes in a row before a down backend is marked up.",
	},
	{
		.name = "max_replica_lag",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(max_replica_lag_ms),
		.default_value = "10s",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "Replicas further behind get no read-only clients; 0 disables the check.",
	},
	{
		.name = "max_replica_lag_bytes",
		.type = SETTING_SIZE,
		.offset = MS_FIELD(max_replica_lag_bytes),
		.default_value = "0",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = 1024 * GB,
		.doc = "Replicas whose replay is more WAL than this behind the primary's latest "
		       "probe get no read-only clients; 0 disables the check.",
	},
	{
		.name = "ro_fallback",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(ro_fallback),
		.default_value = "primary",
		.is_reloadable = true,
		.enum_names = ro_fallback_names,
		.doc = "What read-only clients get when no replica is usable: the primary, or an "
		       "error.",
	},
	{
		.name = "rw_split",
		.type = SETTING_BOOL,
		.offset = BOOL_FIELD(rw_split),
		.default_value = "off",
		.is_reloadable = true,
		.doc = "On the read-write port, send each provably read-only statement run outside "
		       "a "
		       "transaction block (and each BEGIN READ ONLY block) to the nearest replica "
		       "that "
		       "has replayed the session's own writes, everything else to the primary; a "
		       "session turns it on or off for itself with SET pgwing.split.",
	},
	{
		.name = "read_your_writes_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(read_your_writes_timeout_ms),
		.default_value = "100ms",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "With rw_split, how long a read waits for a replica to replay the session's "
		       "last write (or its pgwing.min_lsn) before it runs on the primary instead.",
	},
	{
		.name = "health_user",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(health_user),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "User the health probes log in as; empty uses the first of admin_users.",
	},
	{
		.name = "health_dbname",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(health_dbname),
		.default_value = "postgres",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "Database the health probes connect to.",
	},
	{
		.name = "dns_nameserver",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(dns_nameserver),
		.default_value = "",
		.is_reloadable = false,
		.max_value = NO_MAX,
		.doc = "DNS server (host[:port]) for backend names and discover= lines; empty uses "
		       "the system's (FLY_NAMESERVER sets it).",
	},
	{
		.name = "discovery_interval",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(discovery_interval_ms),
		.default_value = "5s",
		.is_reloadable = true,
		.min_value = 100,
		.max_value = DURATION_MAX,
		.doc = "Time between two DNS lookups of the discover= lines.",
	},
	{
		.name = "discovery_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(discovery_timeout_ms),
		.default_value = "2s",
		.is_reloadable = true,
		.min_value = 10,
		.max_value = DURATION_MAX,
		.doc = "Time a round of discovery lookups may take; one that fails or times out "
		       "keeps the last set and is retried after this long.",
	},
	{
		.name = "wake_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(wake_timeout_ms),
		.default_value = "60s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "How long clients wait for a backend being woken before SQLSTATE 08006.",
	},
	{
		.name = "fly_api_url",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(fly_api_url),
		.default_value = "http://_api.internal:4280",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Fly Machines API that wake=fly-api starts machines through (http:// only; "
		       "the private network's endpoint needs no TLS).",
	},
	{
		.name = "fly_api_token_env",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(fly_api_token_env),
		.default_value = "FLY_API_TOKEN",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.doc = "Environment variable holding the Machines API token for wake=fly-api "
		       "(a backend's wake_auth_env overrides it); the token is never logged.",
	},
	{
		.name = "server_idle_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(server_idle_timeout_ms),
		.default_value = "60s",
		.is_reloadable = true,
		.min_value = 0,
		.max_value = DURATION_MAX,
		.doc = "A session idle this long gives its server connection back, and its "
		       "state moves with it to the next one (see What a move keeps; a session "
		       "whose state cannot move keeps its server, and so keeps its database "
		       "awake); a pooled server connection idle this long is closed, so its "
		       "backend can stop; 0 disables both.",
	},
	{
		.name = "probe_sleeping",
		.type = SETTING_BOOL,
		.offset = BOOL_FIELD(probe_sleeping),
		.default_value = "off",
		.is_reloadable = true,
		.doc = "Keep probing a backend that is asleep and unwanted (a probe may keep it "
		       "awake).",
	},
	{
		.name = "wake_for_reads",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(wake_for_reads),
		.default_value = "nearest",
		.is_reloadable = true,
		.enum_names = wake_for_reads_names,
		.doc = "When read-only clients wake a sleeping replica: nearest (only if no usable "
		       "replica is up), never, or always.",
	},
	{
		.name = "stats_period",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(stats_period_ms),
		.default_value = "15s",
		.is_reloadable = true,
		.min_value = SECOND_MS,
		.max_value = HOUR_MS,
		.doc = "Period over which SHOW STATS computes its per-second averages.",
	},
	{
		.name = "metrics_listen",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(metrics_listen),
		.default_value = "",
		.max_value = NO_MAX,
		.doc = "Address (host:port) of the Prometheus metrics endpoint; empty disables it.",
	},
	{
		.name = "metrics_timeout",
		.type = SETTING_DURATION,
		.offset = MS_FIELD(metrics_timeout_ms),
		.default_value = "10s",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = DURATION_MAX,
		.doc = "A metrics connection that sends nothing (or reads nothing of its reply) "
		       "for this long is closed.",
	},
	{
		.name = "metrics_max_request_size",
		.type = SETTING_SIZE,
		.offset = MS_FIELD(metrics_max_request_size),
		.default_value = "16kB",
		.is_reloadable = true,
		.min_value = KB,
		.max_value = MB,
		.doc = "Largest request line plus headers, and largest body, a metrics client may "
		       "send; a larger request is refused and its connection closed.",
	},
	{
		.name = "metrics_max_conn",
		.type = SETTING_INT,
		.offset = INT_FIELD(metrics_max_conn),
		.default_value = "16",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = INT_MAX,
		.doc = "Most metrics connections open at once; more wait in the kernel's backlog "
		       "until one closes.",
	},
	{
		.name = "client_tls_sslmode",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(client_tls_sslmode),
		.default_value = "disable",
		.is_reloadable = true,
		.enum_names = tls_mode_names,
		.doc = "TLS for clients: disable answers SSLRequest with N; allow and prefer "
		       "accept TLS and plaintext; require refuses plaintext; verify-ca also wants "
		       "a client certificate signed by client_tls_ca_file; verify-full also wants "
		       "its CN to be the user name.",
	},
	{
		.name = "client_tls_cert_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(client_tls_cert_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "pgwing's certificate (PEM, chain allowed) for clients.",
	},
	{
		.name = "client_tls_key_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(client_tls_key_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "The private key of client_tls_cert_file (PEM).",
	},
	{
		.name = "client_tls_ca_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(client_tls_ca_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "CA certificates client certificates must chain to (verify-ca, "
		       "verify-full).",
	},
	{
		.name = "client_tls_protocols",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(client_tls_protocols),
		.default_value = "secure",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "TLS versions clients may use: a comma list of tlsv1.0, tlsv1.1, tlsv1.2, "
		       "tlsv1.3 (the range from the lowest to the highest is allowed), secure "
		       "(tlsv1.2,tlsv1.3) or all.",
	},
	{
		.name = "client_tls_ciphers",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(client_tls_ciphers),
		.default_value = "HIGH:MEDIUM:+3DES:!aNULL",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "OpenSSL cipher list for TLS 1.2 and older (TLS 1.3 suites are OpenSSL's).",
	},
	{
		.name = "server_tls_sslmode",
		.type = SETTING_ENUM,
		.offset = ENUM_FIELD(server_tls_sslmode),
		.default_value = "prefer",
		.is_reloadable = true,
		.enum_names = tls_mode_names,
		.doc = "TLS to servers, as libpq's sslmode (allow connects in plaintext); a "
		       "backend's "
		       "sslmode= overrides it. Health probes use the same mode.",
	},
	{
		.name = "server_tls_ca_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(server_tls_ca_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "CA certificates servers' certificates must chain to (verify-ca, "
		       "verify-full); empty uses the system's trusted CAs.",
	},
	{
		.name = "server_tls_cert_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(server_tls_cert_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "Client certificate pgwing presents to servers; empty presents none.",
	},
	{
		.name = "server_tls_key_file",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(server_tls_key_file),
		.default_value = "",
		.is_reloadable = true,
		.max_value = NO_MAX,
		.is_path = true,
		.doc = "The private key of server_tls_cert_file.",
	},
	{
		.name = "server_require_auth",
		.type = SETTING_STRING,
		.offset = STRING_FIELD(server_require_auth),
		.default_value = "scram-sha-256,md5,password,none",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = NO_MAX,
		.doc = "What a server may ask pgwing and its health probes for at login, as "
		       "libpq's require_auth: a comma list of scram-sha-256, md5, password "
		       "(cleartext), none (no authentication), or of what it may not, each with !.",
	},
	{
		.name = "server_scram_max_iterations",
		.type = SETTING_INT,
		.offset = INT_FIELD(server_scram_max_iterations),
		/* 11 to 28 ms of PBKDF2-SHA256 here (doc/config.md); Postgres uses 4096. */
		.default_value = "32768",
		.is_reloadable = true,
		.min_value = 1,
		.max_value = 10000000, /* SCRAM_ITER_MAX: scram.c accepts no more */
		.doc = "Most SCRAM iterations a server may ask for when pgwing or a health probe "
		       "derives the key from a plaintext password (the event loop waits for it); "
		       "more fails the login.",
	},
};

const struct setting *config_settings(size_t *count)
{
	*count = ARRAY_SIZE(settings);
	return settings;
}

const struct setting *config_find_setting(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (strcmp(settings[i].name, name) == 0)
			return &settings[i];
	return NULL;
}

const char *settings_type_name(enum setting_type type)
{
	static const char *const names[] = {
		[SETTING_STRING] = "string",     [SETTING_INT] = "integer", [SETTING_BOOL] = "bool",
		[SETTING_DURATION] = "duration", [SETTING_SIZE] = "size",   [SETTING_ENUM] = "enum",
	};

	return names[type];
}

/* Units, largest first so formatting can pick the largest exact one. */
struct unit {
	const char *name;
	int64_t factor;
};

static const struct unit duration_units[] = {
	{"h", HOUR_MS}, {"min", MINUTE_MS}, {"s", SECOND_MS}, {"ms", 1}, {NULL, 0},
};

static const struct unit size_units[] = {
	{"GB", GB},
	{"MB", MB},
	{"kB", KB},
	{NULL, 0},
};

static const struct unit no_units[] = {
	{NULL, 0},
};

/*
 * A number with an optional unit, as Postgres writes them: digits only (no
 * sign, no fraction), optional blanks, then a unit; bare_factor applies
 * without one. Units are case-sensitive, as in Postgres ("kB", not "KB").
 */
static bool parse_with_unit(const char *text, const struct unit *units, int64_t bare_factor,
			    int64_t *result)
{
	const char *p = text;
	const char *unit;
	int64_t value = 0;
	int64_t factor = bare_factor;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		int digit = *p - '0';

		if (value > (INT64_MAX - digit) / 10)
			return false;
		value = value * 10 + digit;
	}
	unit = p + strspn(p, " \t");
	if (*unit != '\0') {
		const struct unit *u;

		for (u = units; u->name != NULL; u++)
			if (strcmp(unit, u->name) == 0)
				break;
		if (u->name == NULL)
			return false;
		factor = u->factor;
	} else if (unit != p) {
		return false; /* trailing blanks without a unit */
	}
	if (value > INT64_MAX / factor)
		return false;
	*result = value * factor;
	return true;
}

static void format_with_unit(int64_t value, const struct unit *units, char *buf, size_t buflen)
{
	if (value != 0) {
		for (const struct unit *u = units; u->name != NULL; u++) {
			if (value % u->factor == 0) {
				snprintf(buf, buflen, "%lld%s", (long long)(value / u->factor),
					 u->name);
				return;
			}
		}
	}
	snprintf(buf, buflen, "%lld", (long long)value);
}

bool config_parse_duration(const char *text, int64_t *ms)
{
	return parse_with_unit(text, duration_units, SECOND_MS, ms);
}

bool config_parse_size(const char *text, int64_t *bytes)
{
	return parse_with_unit(text, size_units, 1, bytes);
}

bool config_parse_bool(const char *text, bool *value)
{
	static const char *const yes[] = {"on", "true", "yes", "1"};
	static const char *const no[] = {"off", "false", "no", "0"};

	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*value = true;
			return true;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*value = false;
			return true;
		}
	}
	return false;
}

bool settings_parse_int(const char *text, int64_t *value)
{
	return parse_with_unit(text, no_units, 1, value);
}

/* A number of the setting's type, written as in the file. */
static void format_number(const struct setting *s, int64_t value, char *buf, size_t buflen)
{
	switch (s->type) {
	case SETTING_DURATION:
		format_with_unit(value, duration_units, buf, buflen);
		break;
	case SETTING_SIZE:
		format_with_unit(value, size_units, buf, buflen);
		break;
	default:
		snprintf(buf, buflen, "%lld", (long long)value);
		break;
	}
}

void config_format_range(const struct setting *s, char *buf, size_t buflen)
{
	char lo[32], hi[32];
	size_t len = 0;

	buf[0] = '\0';
	switch (s->type) {
	case SETTING_STRING:
		if (s->min_value > 0)
			snprintf(buf, buflen, "non-empty");
		else if (s->max_value != NO_MAX)
			snprintf(buf, buflen, "at most %lld bytes", (long long)s->max_value);
		break;
	case SETTING_BOOL:
		snprintf(buf, buflen, "on, off");
		break;
	case SETTING_ENUM:
		for (const char *const *name = s->enum_names; *name != NULL && len < buflen; name++)
			len += snprintf(buf + len, buflen - len, "%s%s", len > 0 ? ", " : "",
					*name);
		break;
	case SETTING_INT:
	case SETTING_DURATION:
	case SETTING_SIZE:
		format_number(s, s->min_value, lo, sizeof(lo));
		format_number(s, s->max_value, hi, sizeof(hi));
		snprintf(buf, buflen, "%s .. %s", lo, hi);
		break;
	}
}
char *settings_path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir) + 1 + strlen(name) + 1;
	char *path = xmalloc(len);

	snprintf(path, len, "%s/%s", dir, name);
	return path;
}

static bool set_string(const struct setting *s, char **field, const char *text, const char *dir,
		       char *msg, size_t msglen)
{
	char *value;
	size_t len;

	value = s->is_path && text[0] != '\0' && text[0] != '/' ? settings_path_join(dir, text)
								: xstrdup(text);
	len = strlen(value);
	if ((int64_t)len < s->min_value) {
		snprintf(msg, msglen, "setting \"%s\" must not be empty", s->name);
		free(value);
		return false;
	}
	if ((int64_t)len > s->max_value) {
		snprintf(msg, msglen,
			 "value for setting \"%s\" is too long (at most %lld bytes): \"%s\"",
			 s->name, (long long)s->max_value, value);
		free(value);
		return false;
	}
	free(*field);
	*field = value;
	return true;
}

static bool set_enum(const struct setting *s, int *field, const char *text, char *msg,
		     size_t msglen)
{
	char names[128];

	for (int i = 0; s->enum_names[i] != NULL; i++) {
		if (strcasecmp(text, s->enum_names[i]) == 0) {
			*field = i;
			return true;
		}
	}
	config_format_range(s, names, sizeof(names));
	snprintf(msg, msglen, "invalid value for setting \"%s\": \"%s\" (expected one of %s)",
		 s->name, text, names);
	return false;
}

static bool set_number(const struct setting *s, void *field, const char *text, char *msg,
		       size_t msglen)
{
	static const char *const expected[] = {
		[SETTING_INT] = "a whole number",
		[SETTING_DURATION] = "a duration such as 500ms, 5s, 2min or 1h",
		[SETTING_SIZE] = "a size such as 512kB, 64MB or 1GB",
	};
	char shown[32], range[64];
	int64_t value;
	bool is_valid;

	if (s->type == SETTING_DURATION)
		is_valid = config_parse_duration(text, &value);
	else if (s->type == SETTING_SIZE)
		is_valid = config_parse_size(text, &value);
	else
		is_valid = settings_parse_int(text, &value);
	if (!is_valid) {
		snprintf(msg, msglen, "invalid value for setting \"%s\": \"%s\" (expected %s)",
			 s->name, text, expected[s->type]);
		return false;
	}
	if (value < s->min_value || value > s->max_value) {
		format_number(s, value, shown, sizeof(shown));
		config_format_range(s, range, sizeof(range));
		snprintf(msg, msglen, "%s is outside the valid range for setting \"%s\" (%s)",
			 shown, s->name, range);
		return false;
	}
	if (s->type == SETTING_INT)
		*(int *)field = (int)value;
	else
		*(int64_t *)field = value;
	return true;
}

bool settings_apply(struct config *cfg, const struct setting *s, const char *text, const char *dir,
		    char *msg, size_t msglen)
{
	void *field = (char *)cfg + s->offset;
	bool value;

	switch (s->type) {
	case SETTING_STRING:
		return set_string(s, field, text, dir, msg, msglen);
	case SETTING_BOOL:
		if (!config_parse_bool(text, &value)) {
			snprintf(msg, msglen,
				 "invalid value for setting \"%s\": \"%s\" (expected on or off)",
				 s->name, text);
			return false;
		}
		*(bool *)field = value;
		return true;
	case SETTING_ENUM:
		return set_enum(s, field, text, msg, msglen);
	case SETTING_INT:
	case SETTING_DURATION:
	case SETTING_SIZE:
		return set_number(s, field, text, msg, msglen);
	}
	return false;
}

void config_format_value(const struct config *cfg, const struct setting *s, char *buf,
			 size_t buflen)
{
	const void *field = (const char *)cfg + s->offset;

	switch (s->type) {
	case SETTING_STRING:
		snprintf(buf, buflen, "%s", *(char *const *)field);
		break;
	case SETTING_INT:
		snprintf(buf, buflen, "%d", *(const int *)field);
		break;
	case SETTING_BOOL:
		snprintf(buf, buflen, "%s", *(const bool *)field ? "on" : "off");
		break;
	case SETTING_DURATION:
	case SETTING_SIZE:
		format_number(s, *(const int64_t *)field, buf, buflen);
		break;
	case SETTING_ENUM:
		snprintf(buf, buflen, "%s", s->enum_names[*(const int *)field]);
		break;
	}
}

bool config_is_changed(const struct config *a, const struct config *b, const struct setting *s)
{
	char va[64], vb[64];

	/* Strings are compared whole: a long path could differ past the buffers. */
	if (s->type == SETTING_STRING)
		return strcmp(*(char *const *)((const char *)a + s->offset),
			      *(char *const *)((const char *)b + s->offset)) != 0;
	config_format_value(a, s, va, sizeof(va));
	config_format_value(b, s, vb, sizeof(vb));
	return strcmp(va, vb) != 0;
}

void config_copy_setting(struct config *dst, const struct config *src, const struct setting *s)
{
	void *to = (char *)dst + s->offset;
	const void *from = (const char *)src + s->offset;

	switch (s->type) {
	case SETTING_STRING:
		free(*(char **)to);
		*(char **)to = xstrdup(*(char *const *)from);
		break;
	case SETTING_INT:
	case SETTING_ENUM:
		*(int *)to = *(const int *)from;
		break;
	case SETTING_BOOL:
		*(bool *)to = *(const bool *)from;
		break;
	case SETTING_DURATION:
	case SETTING_SIZE:
		*(int64_t *)to = *(const int64_t *)from;
		break;
	}
}

bool config_list_contains(const char *list, const char *name)
{
	size_t name_len = strlen(name);
	const char *p = list;

	if (name_len == 0)
		return false;
	while (*p != '\0') {
		const char *end;
		size_t len;

		p += strspn(p, " \t");
		end = p + strcspn(p, ",");
		len = (size_t)(end - p);
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == name_len && memcmp(p, name, len) == 0)
			return true;
		p = *end == ',' ? end + 1 : end;
	}
	return false;
}
bool config_parse_tls_mode(const char *name, enum tls_mode *mode)
{
	for (int i = 0; tls_mode_names[i] != NULL; i++) {
		if (strcmp(name, tls_mode_names[i]) == 0) {
			*mode = (enum tls_mode)i;
			return true;
		}
	}
	return false;
}

const char *config_tls_mode_name(enum tls_mode mode)
{
	return tls_mode_names[mode];
}