/*
 * The configuration: the table of settings, the ini file, environment
 * overrides and validation.
 *
 * Every value, whether it is a built-in default, a line of the file or an
 * environment variable, goes through setting_apply(), so all three obey the
 * same syntax and the same ranges.
 */
#include "pgwing/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/un.h>
#include <unistd.h>

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
#define PORT_MAX 65535

/* Letters, digits and underscore: environment variable names, and backend names with ".-". */
#define NAME_CHARS "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"

/* The socket file is "<dir>/.s.PGSQL.<port>", which must fit in sun_path with its NUL. */
#define UNIX_SOCKET_DIR_MAX \
	(sizeof(((struct sockaddr_un *)0)->sun_path) - sizeof("/.s.PGSQL.65535"))

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
		.doc = "Region the primary is meant to run in.",
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
		.doc = "Close a server connection idle this long, so its backend can stop; 0 "
		       "disables.",
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

static bool parse_int(const char *text, int64_t *value)
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

/* dir + "/" + name; dir may be "" for the root. */
static char *path_join(const char *dir, const char *name)
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

	value = s->is_path && text[0] != '\0' && text[0] != '/' ? path_join(dir, text)
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
		is_valid = parse_int(text, &value);
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

/*
 * Parse text as the value of s and store it in cfg. Relative paths are
 * resolved against dir. On failure, msg says why (without a location: the
 * caller knows where the text came from).
 */
static bool setting_apply(struct config *cfg, const struct setting *s, const char *text,
			  const char *dir, char *msg, size_t msglen)
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

/* The ini file. */

enum section {
	SECTION_NONE,
	SECTION_PGWING,
	SECTION_BACKENDS,
};

struct parser {
	struct config *cfg;
	const char *path; /* as the caller gave it, for messages */
	char *dir;        /* absolute directory of the file, for relative paths */
	int line;
	enum section section;
	int *setting_lines; /* per setting, the line that set it; 0 if none */
	char *err;
	size_t errlen;
};

static bool parse_error(struct parser *p, const char *fmt, ...) PRINTF_LIKE(2, 3);

static bool parse_error(struct parser *p, const char *fmt, ...)
{
	int len;
	va_list ap;

	if (p->line > 0)
		len = snprintf(p->err, p->errlen, "%s:%d: ", p->path, p->line);
	else
		len = snprintf(p->err, p->errlen, "%s: ", p->path);
	if (len >= 0 && (size_t)len < p->errlen) {
		va_start(ap, fmt);
		vsnprintf(p->err + len, p->errlen - (size_t)len, fmt, ap);
		va_end(ap);
	}
	return false;
}

/*
 * Blanks are whatever isspace() says, at the start as at the end: a line that
 * began with a \v once passed for a backend with an empty name.
 */
static char *skip_blanks(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

static char *trim(char *s)
{
	char *end;

	s = skip_blanks(s);
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	return s;
}

/*
 * Cut a trailing comment: ';' or '#' at the start of the line or after a
 * blank, outside double quotes (so "a;b" and 'x = "1 ; 2"' keep theirs).
 * Inside quotes a backslash escapes the next character.
 */
static bool strip_comment(struct parser *p, char *line)
{
	bool is_quoted = false;

	for (char *c = line; *c != '\0'; c++) {
		if (is_quoted && *c == '\\' && c[1] != '\0') {
			c++;
		} else if (*c == '"') {
			is_quoted = !is_quoted;
		} else if (!is_quoted && (*c == ';' || *c == '#') &&
			   (c == line || isspace((unsigned char)c[-1]))) {
			*c = '\0';
			break;
		}
	}
	return !is_quoted || parse_error(p, "unterminated quoted string");
}

/*
 * One blank-separated word starting at *pos, advancing *pos past it. Quoted
 * parts join the bare text around them, as in a shell: exec:"a b" is the
 * word exec:a b. In quotes, \" and \\ stand for " and \.
 */
static char *read_word(char **pos)
{
	char *in = *pos;
	char *word = xmalloc(strlen(in) + 1);
	char *out = word;
	bool is_quoted = false;

	for (; *in != '\0' && (is_quoted || !isspace((unsigned char)*in)); in++) {
		if (*in == '"')
			is_quoted = !is_quoted;
		else if (is_quoted && *in == '\\' && (in[1] == '"' || in[1] == '\\'))
			*out++ = *++in;
		else
			*out++ = *in;
	}
	*out = '\0';
	*pos = in;
	return word;
}

static bool parse_section(struct parser *p, char *line)
{
	char *close = strchr(line, ']');
	char *name;

	if (close == NULL || *trim(close + 1) != '\0')
		return parse_error(p, "syntax error in section header: expected \"[name]\"");
	*close = '\0';
	name = trim(line + 1);
	if (strcmp(name, "pgwing") == 0)
		p->section = SECTION_PGWING;
	else if (strcmp(name, "backends") == 0)
		p->section = SECTION_BACKENDS;
	else
		return parse_error(p, "unknown section \"[%s]\"", name);
	return true;
}

static bool parse_setting(struct parser *p, const char *name, char *value)
{
	const struct setting *s = config_find_setting(name);
	char *text;
	char msg[512];
	bool ok;
	size_t idx;

	if (s == NULL)
		return parse_error(p, "unknown setting \"%s\"", name);
	idx = (size_t)(s - settings);
	if (p->setting_lines[idx] != 0)
		return parse_error(p, "setting \"%s\" is already set on line %d", name,
				   p->setting_lines[idx]);
	p->setting_lines[idx] = p->line;

	if (value[0] == '"') {
		char *rest = value;

		text = read_word(&rest);
		if (*trim(rest) != '\0') {
			free(text);
			return parse_error(p, "unexpected text after the quoted value of \"%s\"",
					   name);
		}
	} else {
		text = xstrdup(value);
	}
	ok = setting_apply(p->cfg, s, text, p->dir, msg, sizeof(msg));
	free(text);
	return ok || parse_error(p, "%s", msg);
}

static const char *check_not_empty(const char *value)
{
	return value[0] == '\0' ? "must not be empty" : NULL;
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

static const char *check_sslmode(const char *value)
{
	enum tls_mode mode;

	return config_parse_tls_mode(value, &mode)
		       ? NULL
		       : "expected disable, allow, prefer, require, verify-ca or verify-full";
}

static const char *check_wake(const char *value)
{
	const char *machine;

	if ((strncmp(value, "exec:", 5) == 0 || strncmp(value, "http:", 5) == 0) &&
	    value[5] != '\0')
		return NULL;
	/* Bare fly-api and none only make sense on a discover = fly: line; parse_backend checks. */
	if (strcmp(value, "fly-api") == 0 || strcmp(value, "none") == 0)
		return NULL;
	/* fly-api:<app>/<machine_id>: both go into the API's URL path, so no / ? % or blanks. */
	if (strncmp(value, "fly-api:", 8) == 0 && (machine = strchr(value + 8, '/')) != NULL &&
	    machine > value + 8 && machine[1] != '\0' &&
	    strspn(value + 8, NAME_CHARS ".-/") == strlen(value + 8) &&
	    strchr(machine + 1, '/') == NULL)
		return NULL;
	return "expected exec:\"command\", an http:// URL or fly-api:<app>/<machine_id>";
}

static const char *check_env_name(const char *value)
{
	if ((isalpha((unsigned char)value[0]) || value[0] == '_') &&
	    strspn(value, NAME_CHARS) == strlen(value))
		return NULL;
	return "expected the name of an environment variable";
}

/* The string keys of a backend line; port is the one number and is parsed apart. */
static const struct backend_key {
	const char *name;
	size_t offset;                           /* of a char * in struct backend_config */
	const char *(*check)(const char *value); /* NULL if fine, else what is wrong */
} backend_keys[] = {
	{"host", offsetof(struct backend_config, host), check_not_empty},
	{"region", offsetof(struct backend_config, region), NULL},
	{"sslmode", offsetof(struct backend_config, sslmode), check_sslmode},
	{"wake", offsetof(struct backend_config, wake), check_wake},
	{"wake_auth_env", offsetof(struct backend_config, wake_auth_env), check_env_name},
};

static bool backend_set(struct parser *p, struct backend_config *b, const char *key,
			const char *value, bool *has_port)
{
	const struct backend_key *k;
	const char *problem;
	char **field;
	int64_t port;

	if (strcmp(key, "port") == 0) {
		if (*has_port)
			return parse_error(p, "backend \"%s\": \"port\" is given twice", b->name);
		if (!parse_int(value, &port) || port < 1 || port > PORT_MAX)
			return parse_error(p,
					   "backend \"%s\": invalid port \"%s\" (expected 1 .. %d)",
					   b->name, value, PORT_MAX);
		*has_port = true;
		b->port = (int)port;
		return true;
	}
	for (k = backend_keys; k < backend_keys + ARRAY_SIZE(backend_keys); k++)
		if (strcmp(key, k->name) == 0)
			break;
	if (k == backend_keys + ARRAY_SIZE(backend_keys))
		return parse_error(p, "backend \"%s\": unknown key \"%s\"", b->name, key);
	field = (char **)((char *)b + k->offset);
	if (*field != NULL)
		return parse_error(p, "backend \"%s\": \"%s\" is given twice", b->name, key);
	problem = k->check != NULL ? k->check(value) : NULL;
	if (problem != NULL)
		return parse_error(p, "backend \"%s\": invalid %s \"%s\" (%s)", b->name, key, value,
				   problem);
	*field = xstrdup(value);
	return true;
}

/* The key=value words after a backend's name (or a discover= line's source) into b. */
static bool parse_backend_words(struct parser *p, struct backend_config *b, char *pos,
				char **regions)
{
	bool has_port = false;

	for (pos = skip_blanks(pos); *pos != '\0'; pos = skip_blanks(pos)) {
		char *word = read_word(&pos);
		char *eq = strchr(word, '=');
		bool ok;

		if (eq == NULL) {
			ok = parse_error(p, "backend \"%s\": expected key=value, found \"%s\"",
					 b->name, word);
		} else {
			*eq = '\0';
			ok = true;
			if (regions != NULL && strcmp(word, "regions") == 0 && *regions == NULL)
				*regions = xstrdup(eq + 1);
			else if (regions != NULL && strcmp(word, "host") == 0)
				ok = parse_error(p, "discover: the hosts come from DNS; no host=");
			else
				ok = backend_set(p, b, word, eq + 1, &has_port);
		}
		free(word);
		if (!ok)
			return false;
	}
	if (b->region == NULL)
		b->region = xstrdup("");
	return true;
}

/*
 * "discover = fly:<app> [port=5433] ..." or "discover = dns:<name> [regions=a,b]
 * ...": the source, then the words of a backend line, which every backend found gets.
 */
static bool parse_discover(struct parser *p, char *value)
{
	struct config *cfg = p->cfg;
	struct discover_config *d;
	char *pos = skip_blanks(value);
	char *source = read_word(&pos);
	bool is_fly = strncmp(source, "fly:", 4) == 0;
	const char *name = source + 4;

	if ((!is_fly && strncmp(source, "dns:", 4) != 0) || name[0] == '\0' ||
	    strspn(name, NAME_CHARS ".-") != strlen(name) || strlen(name) > 200) {
		parse_error(p, "discover: expected fly:<app> or dns:<name>, found \"%s\"", source);
		free(source);
		return false;
	}
	cfg->discovers = xrealloc(cfg->discovers, (cfg->ndiscovers + 1) * sizeof(*cfg->discovers));
	d = &cfg->discovers[cfg->ndiscovers++];
	*d = (struct discover_config){
		.source = source,
		.tmpl = {.name = xstrdup("discover"),
			 .port = is_fly ? 5433 : 5432,
			 .line = p->line},
	};
	if (!parse_backend_words(p, &d->tmpl, pos, &d->regions))
		return false;
	/* Discovery fills in the app and machine of each fly: machine; it has neither for dns:. */
	if (d->tmpl.wake != NULL && strncmp(d->tmpl.wake, "fly-api", 7) == 0 &&
	    (!is_fly || d->tmpl.wake[7] != '\0'))
		return parse_error(p, "discover: wake=fly-api is for fly: lines, without an app or "
				      "machine (discovery gives both)");
	if (d->regions != NULL && (is_fly || d->tmpl.region[0] != '\0'))
		return parse_error(p, "discover: regions= is for dns: without region=");
	return true;
}

/* "name = host=H port=P region=R ...": words of key=value, values maybe quoted. */
static bool parse_backend(struct parser *p, const char *name, char *value)
{
	struct config *cfg = p->cfg;
	struct backend_config *b;

	if (strcmp(name, "discover") == 0)
		return parse_discover(p, value);
	if (strspn(name, NAME_CHARS ".-") != strlen(name))
		return parse_error(p, "invalid backend name \"%s\" (use letters, digits, _ . -)",
				   name);
	for (int i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i].name, name) == 0)
			return parse_error(p, "duplicate backend \"%s\" (first defined on line %d)",
					   name, cfg->backends[i].line);

	cfg->backends = xrealloc(cfg->backends, (cfg->nbackends + 1) * sizeof(*cfg->backends));
	b = &cfg->backends[cfg->nbackends++];
	*b = (struct backend_config){.name = xstrdup(name), .port = 5432, .line = p->line};

	if (!parse_backend_words(p, b, value, NULL))
		return false;
	if (b->host == NULL)
		return parse_error(p, "backend \"%s\" has no host", name);
	if (b->wake != NULL && strcmp(b->wake, "fly-api") == 0)
		return parse_error(p,
				   "backend \"%s\": wake=fly-api needs the machine here: "
				   "fly-api:<app>/<machine_id>",
				   name);
	/* none is the default of a backend line: say it by having no wake. */
	if (b->wake != NULL && strcmp(b->wake, "none") == 0) {
		free(b->wake);
		b->wake = NULL;
	}
	return true;
}

static bool parse_line(struct parser *p, char *line)
{
	char *eq, *name;

	if (!strip_comment(p, line))
		return false;
	line = trim(line);
	if (line[0] == '\0')
		return true;
	if (line[0] == '[')
		return parse_section(p, line);
	eq = strchr(line, '=');
	if (eq == NULL || eq == line)
		return parse_error(p, "syntax error: expected \"name = value\" or \"[section]\"");
	*eq = '\0';
	name = trim(line);
	switch (p->section) {
	case SECTION_PGWING:
		return parse_setting(p, name, trim(eq + 1));
	case SECTION_BACKENDS:
		return parse_backend(p, name, trim(eq + 1));
	case SECTION_NONE:
		break;
	}
	return parse_error(p, "setting \"%s\" is outside any section", name);
}

static bool parse_file(struct parser *p, FILE *f)
{
	char *line = NULL;
	size_t cap = 0;
	bool ok = true;

	while (ok && getline(&line, &cap, f) != -1) {
		p->line++;
		line[strcspn(line, "\r\n")] = '\0';
		ok = parse_line(p, line);
	}
	free(line);
	if (ok && ferror(f)) {
		p->line = 0;
		ok = parse_error(p, "%s", strerror(errno));
	}
	return ok;
}

static bool apply_defaults(struct parser *p)
{
	char msg[512];

	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (!setting_apply(p->cfg, &settings[i], settings[i].default_value, p->dir, msg,
				   sizeof(msg)))
			return parse_error(p, "built-in default: %s", msg);
	return true;
}

static bool apply_env_var(struct parser *p, const char *var, const struct setting *s)
{
	const char *value = getenv(var);
	char msg[512];

	if (value == NULL || setting_apply(p->cfg, s, value, p->dir, msg, sizeof(msg)))
		return true;
	snprintf(p->err, p->errlen, "environment %s: %s", var, msg);
	return false;
}

/* The platform's variables first, so that PGWING_* ones win over them. */
static bool apply_env(struct parser *p)
{
	char var[64];

	if (!apply_env_var(p, "FLY_REGION", config_find_setting("region")) ||
	    !apply_env_var(p, "PRIMARY_REGION", config_find_setting("primary_region")) ||
	    !apply_env_var(p, "FLY_NAMESERVER", config_find_setting("dns_nameserver")))
		return false;
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		size_t len = (size_t)snprintf(var, sizeof(var), "PGWING_%s", settings[i].name);

		for (size_t j = 0; j < len; j++)
			var[j] = (char)toupper((unsigned char)var[j]);
		if (!apply_env_var(p, var, &settings[i]))
			return false;
	}
	return true;
}

/*
 * server_require_auth into cfg->server_auth_methods. As libpq: either every
 * item names a method allowed, or every item is one refused ("!md5").
 */
static bool parse_server_auth_methods(struct parser *p)
{
	static const struct {
		const char *name;
		unsigned bit;
	} methods[] = {
		{"scram-sha-256", SERVER_AUTH_SCRAM},
		{"md5", SERVER_AUTH_MD5},
		{"password", SERVER_AUTH_PASSWORD},
		{"none", SERVER_AUTH_NONE},
	};
	const char *pos = p->cfg->server_require_auth;
	unsigned listed = 0;
	int negations = 0, items = 0;

	while (*pos != '\0') {
		size_t len = strcspn(pos, ","), item_len;
		const char *item = pos + strspn(pos, " \t");
		bool is_negated = *item == '!';
		size_t i;

		item += is_negated;
		item_len = (size_t)(pos + len - item);
		while (item_len > 0 && (item[item_len - 1] == ' ' || item[item_len - 1] == '\t'))
			item_len--;
		for (i = 0; i < ARRAY_SIZE(methods); i++)
			if (item_len == strlen(methods[i].name) &&
			    strncmp(item, methods[i].name, item_len) == 0)
				break;
		if (i == ARRAY_SIZE(methods))
			return parse_error(p, "server_require_auth: unknown method \"%.*s\"",
					   (int)len, pos);
		listed |= methods[i].bit;
		negations += is_negated;
		items++;
		pos += len + (pos[len] == ',');
	}
	if (negations != 0 && negations != items)
		return parse_error(p, "server_require_auth: either every method has ! or none has");
	if (negations != 0)
		listed = SERVER_AUTH_ANY & ~listed;
	if (listed == 0)
		return parse_error(p, "server_require_auth refuses every method");
	p->cfg->server_auth_methods = listed;
	return true;
}

/* Rules across settings, checked once file and environment are both in. */
static bool validate(struct parser *p)
{
	const struct config *cfg = p->cfg;

	p->line = 0;
	if (cfg->nbackends == 0 && cfg->ndiscovers == 0)
		return parse_error(p, "no backends: add at least one (or a discover= line) to "
				      "[backends]");
	if (cfg->rw_port == cfg->ro_port)
		return parse_error(p, "rw_port and ro_port must differ (both are %d)",
				   cfg->rw_port);
	if (cfg->health_user[0] == '\0' &&
	    strspn(cfg->admin_users, ", \t") == strlen(cfg->admin_users))
		return parse_error(
			p, "health_user is empty and admin_users has no user to use instead");
	if (cfg->client_tls_sslmode != TLS_DISABLE &&
	    (cfg->client_tls_cert_file[0] == '\0' || cfg->client_tls_key_file[0] == '\0'))
		return parse_error(p,
				   "client_tls_sslmode %s needs client_tls_cert_file and "
				   "client_tls_key_file",
				   tls_mode_names[cfg->client_tls_sslmode]);
	if (cfg->client_tls_sslmode >= TLS_VERIFY_CA && cfg->client_tls_ca_file[0] == '\0')
		return parse_error(p, "client_tls_sslmode %s needs client_tls_ca_file",
				   tls_mode_names[cfg->client_tls_sslmode]);
	if ((cfg->server_tls_cert_file[0] == '\0') != (cfg->server_tls_key_file[0] == '\0'))
		return parse_error(p, "server_tls_cert_file and server_tls_key_file go together");
	/*
	 * Last: config_set puts back a refused value's string but not the methods
	 * parsed from it, so they are parsed only once every other rule holds.
	 */
	return parse_server_auth_methods(p);
}

/* The absolute form of path, and the directory it is in. */
static bool make_absolute(struct parser *p, const char *path, char **abs_path)
{
	char cwd[PATH_MAX];

	if (path[0] == '/') {
		*abs_path = xstrdup(path);
	} else if (getcwd(cwd, sizeof(cwd)) != NULL) {
		*abs_path = path_join(cwd, path);
	} else {
		return parse_error(p, "could not get the current directory: %s", strerror(errno));
	}
	p->dir = xstrdup(*abs_path);
	*strrchr(p->dir, '/') = '\0';
	return true;
}

bool config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen)
{
	const struct setting *s = config_find_setting(name);
	char what[128];
	struct parser p = {.cfg = cfg, .path = what, .err = err, .errlen = errlen};
	struct config *saved;
	bool ok;

	if (s == NULL) {
		snprintf(err, errlen, "unknown setting \"%s\"", name);
		return false;
	}
	if (!s->is_reloadable) {
		snprintf(err, errlen, "setting \"%s\" cannot change while pgwing runs (restart it)",
			 name);
		return false;
	}
	/*
	 * A console user could otherwise point the log at any file pgwing may
	 * write, or have it read keys and passwords from one of their choosing:
	 * files are for whoever may edit the config file.
	 */
	if (s->is_path) {
		snprintf(err, errlen,
			 "setting \"%s\" names a file and cannot be changed with SET; edit the "
			 "config file and RELOAD",
			 name);
		return false;
	}
	snprintf(what, sizeof(what), "SET %s", name);
	/* The old value, to put back if the new one breaks a rule across settings. */
	saved = xcalloc(1, sizeof(*saved));
	config_copy_setting(saved, cfg, s);
	/* No directory: only a path would be resolved against one. */
	ok = setting_apply(cfg, s, value, NULL, err, errlen);
	if (ok && !validate(&p)) {
		config_copy_setting(cfg, saved, s);
		ok = false;
	}
	config_free(saved);
	return ok;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
	struct config *cfg = xcalloc(1, sizeof(*cfg));
	struct parser p = {
		.cfg = cfg,
		.path = path,
		.setting_lines = xcalloc(ARRAY_SIZE(settings), sizeof(int)),
		.err = err,
		.errlen = errlen,
	};
	FILE *f = fopen(path, "r");
	bool ok;

	if (f == NULL) {
		ok = parse_error(&p, "%s", strerror(errno));
	} else {
		ok = make_absolute(&p, path, &cfg->path) && apply_defaults(&p) &&
		     parse_file(&p, f) && apply_env(&p) && validate(&p);
		fclose(f);
	}
	free(p.dir);
	free(p.setting_lines);
	if (!ok) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

void config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++)
		if (settings[i].type == SETTING_STRING)
			free(*(char **)((char *)cfg + settings[i].offset));
	for (int i = 0; i < cfg->nbackends; i++)
		config_clear_backend(&cfg->backends[i]);
	free(cfg->backends);
	for (int i = 0; i < cfg->ndiscovers; i++) {
		free(cfg->discovers[i].source);
		free(cfg->discovers[i].regions);
		config_clear_backend(&cfg->discovers[i].tmpl);
	}
	free(cfg->discovers);
	free(cfg->path);
	free(cfg);
}

void config_clear_backend(struct backend_config *b)
{
	free(b->name);
	free(b->host);
	free(b->region);
	free(b->sslmode);
	free(b->wake);
	free(b->wake_auth_env);
}

static char *strdup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void config_copy_backend(struct backend_config *dst, const struct backend_config *src)
{
	*dst = *src;
	dst->name = strdup_or_null(src->name);
	dst->host = strdup_or_null(src->host);
	dst->region = strdup_or_null(src->region);
	dst->sslmode = strdup_or_null(src->sslmode);
	dst->wake = strdup_or_null(src->wake);
	dst->wake_auth_env = strdup_or_null(src->wake_auth_env);
}

/* A double-quoted value as the parser reads it back: \ and " escaped. */
static void write_quoted(FILE *f, const char *value)
{
	fputc('"', f);
	for (const char *c = value; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fputc('\\', f);
		fputc(*c, f);
	}
	fputc('"', f);
}

static void write_key(FILE *f, const char *key, const char *value)
{
	if (value == NULL)
		return;
	fprintf(f, " %s=", key);
	write_quoted(f, value);
}

/* The words every backend line and discover= line may have, after host or source. */
static void write_backend_words(FILE *f, const struct backend_config *b)
{
	fprintf(f, " port=%d", b->port);
	write_key(f, "region", b->region);
	write_key(f, "sslmode", b->sslmode);
	write_key(f, "wake", b->wake);
	write_key(f, "wake_auth_env", b->wake_auth_env);
	fputc('\n', f);
}

void config_write(FILE *f, const struct config *cfg)
{
	char value[128];

	fputs("[pgwing]\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(settings); i++) {
		const struct setting *s = &settings[i];

		fprintf(f, "%s = ", s->name);
		/* Strings as they are, whatever their length; the rest as SHOW CONFIG has them. */
		if (s->type == SETTING_STRING) {
			write_quoted(f, *(char *const *)((const char *)cfg + s->offset));
		} else {
			config_format_value(cfg, s, value, sizeof(value));
			write_quoted(f, value);
		}
		fputc('\n', f);
	}
	fputs("\n[backends]\n", f);
	for (int i = 0; i < cfg->nbackends; i++) {
		fprintf(f, "%s = host=", cfg->backends[i].name);
		write_quoted(f, cfg->backends[i].host);
		write_backend_words(f, &cfg->backends[i]);
	}
	for (int i = 0; i < cfg->ndiscovers; i++) {
		fprintf(f, "discover = %s", cfg->discovers[i].source);
		write_key(f, "regions", cfg->discovers[i].regions);
		write_backend_words(f, &cfg->discovers[i].tmpl);
	}
}
