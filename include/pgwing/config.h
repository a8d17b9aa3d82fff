/*
 * The configuration and its loader. struct config holds one setting a field,
 * described by the table of settings (settings.h), and the [backends] lines.
 * Reload builds a new config and swaps it in; the console's SET changes one
 * reloadable setting of the running one.
 */
#ifndef PGWING_CONFIG_H
#define PGWING_CONFIG_H

#include "pgwing/common.h"
#include "pgwing/log.h"
#include "pgwing/settings.h"

#include <stdio.h>

/* server_require_auth, parsed: each bit lets a server ask pgwing for one thing. */
#define SERVER_AUTH_NONE     (1u << 0) /* nothing: AuthenticationOk with no request (trust) */
#define SERVER_AUTH_PASSWORD (1u << 1) /* the password in clear */
#define SERVER_AUTH_MD5      (1u << 2)
#define SERVER_AUTH_SCRAM    (1u << 3)
#define SERVER_AUTH_ANY \
	(SERVER_AUTH_NONE | SERVER_AUTH_PASSWORD | SERVER_AUTH_MD5 | SERVER_AUTH_SCRAM)

/* One line of [backends]: "name = host=... port=... region=... key=value ...". */
struct backend_config {
	char *name;
	char *host;
	int port;
	char *region;  /* "" when not given */
	char *sslmode; /* NULL: use server_tls_sslmode */
	char *wake; /* NULL, or "exec:..." / "http:..." / "fly-api[:app/id]" / "none" as written */
	char *wake_auth_env;
	int line; /* where it was defined, for messages */
};

/*
 * One "discover = fly:<app> ..." or "discover = dns:<name> ..." line of
 * [backends]: the backends come from DNS (discovery.c); tmpl holds the other
 * words as a backend line would (port, region, sslmode, wake...), no host.
 */
struct discover_config {
	char *source;  /* "fly:<app>" or "dns:<name>", as written */
	char *regions; /* dns: resolve <region>.<name> for each of this comma list; NULL: not */
	struct backend_config tmpl;
};

struct config {
	/* The file it was loaded from, made absolute so a reload survives a chdir; "--fly ..." */
	char *path;
	char *fly_spec; /* --fly: the words it was built from (config_load_fly); NULL: a file */

	/* [pgwing] */
	char *listen_addr; /* comma list; "*" for all */
	int rw_port;
	int ro_port;
	char *unix_socket_dir; /* "" disables */
	int listen_backlog;
	bool so_reuseport; /* share the TCP ports with other processes */
	enum auth_type auth_type;
	char *auth_file;
	/* auth_query: users missing from auth_file are looked up in Postgres as auth_user */
	char *auth_user; /* "" = off */
	char *auth_query;
	char *auth_dbname;
	int64_t auth_cache_ttl_ms; /* 0 = every login looks up */
	int auth_cache_size;       /* users (known or not) remembered at most */
	char *admin_users;         /* comma list */
	char *stats_users;         /* comma list */
	/* auth_type trust reaches the admin console over TCP too */
	bool admin_trust_tcp;
	int max_client_conn;
	int64_t max_packet_size;      /* bytes */
	int64_t forward_buffer_size;  /* bytes */
	int64_t max_session_sql_size; /* bytes */
	int64_t server_connect_timeout_ms;
	int64_t server_tcp_keepalive_ms;    /* 0 disables */
	int64_t server_tcp_user_timeout_ms; /* 0 disables */
	int64_t client_login_timeout_ms;
	int64_t hold_timeout_ms;
	char *server_reset_query;   /* "" = none */
	bool server_reset_always;   /* also after provably read-only sessions */
	int64_t server_lifetime_ms; /* 0 disables */
	int default_pool_size;      /* 0 = no limit */
	enum server_release server_release;
	enum move_check move_check;
	int reserve_pool_size;           /* 0 = none */
	int64_t reserve_pool_timeout_ms; /* 0 = the reserve is off */
	int64_t pool_idle_timeout_ms;    /* 0 = pools are kept */
	char *logfile;                   /* "" = stderr */
	enum log_format log_format;
	char *pidfile;               /* "" = none */
	int64_t shutdown_grace_ms;   /* SIGTERM: still accepting clients this long */
	int64_t shutdown_timeout_ms; /* SIGTERM: transactions end by then, or are cancelled */
	char *takeover_socket; /* control socket for --takeover; "": next to the unix sockets */

	/* topology and routing */
	char *region;
	char *primary_region;
	int64_t health_interval_ms;
	int64_t health_interval_holding_ms; /* while clients wait for a primary and none is known */
	int64_t health_timeout_ms;
	int health_fail_count;
	int health_rise_count;
	int64_t max_replica_lag_ms;    /* 0 disables */
	int64_t max_replica_lag_bytes; /* 0 disables */
	enum ro_fallback ro_fallback;
	bool rw_split;                       /* reads of the rw port to replicas */
	int64_t read_your_writes_timeout_ms; /* a read waits this long for a replica to catch up */
	char *health_user;                   /* "" = first of admin_users */
	char *health_dbname;

	/* scale to zero */
	int64_t wake_timeout_ms;
	char *fly_api_url;              /* wake=fly-api: the Machines API */
	char *fly_api_token_env;        /* wake=fly-api: where its token is */
	int64_t server_idle_timeout_ms; /* 0 disables */
	bool probe_sleeping;
	enum wake_for_reads wake_for_reads;

	/* console, statistics and metrics */
	int64_t stats_period_ms;
	char *metrics_listen; /* "host:port" for the Prometheus endpoint; "" = off */
	int64_t metrics_timeout_ms;
	int64_t metrics_max_request_size;
	int metrics_max_conn;

	/* discovery (discover = lines of [backends]) */
	char *dns_nameserver; /* "host[:port]"; "" = the system's resolvers */
	int64_t discovery_interval_ms;
	int64_t discovery_timeout_ms;

	/* TLS: clients to pgwing */
	enum tls_mode client_tls_sslmode;
	char *client_tls_cert_file;
	char *client_tls_key_file;
	char *client_tls_ca_file;
	char *client_tls_protocols;
	char *client_tls_ciphers;

	/* TLS: pgwing to servers (a backend's sslmode overrides the mode) */
	enum tls_mode server_tls_sslmode;
	char *server_tls_ca_file; /* "" = the system's trusted CAs */
	char *server_tls_cert_file;
	char *server_tls_key_file;

	/* What servers may ask of pgwing logging in, its own logins and health probes alike */
	char *server_require_auth;    /* a list as libpq's require_auth */
	unsigned server_auth_methods; /* SERVER_AUTH_* bits, parsed from it by validation */
	int server_scram_max_iterations;

	/* [backends], in file order */
	struct backend_config *backends;
	int nbackends;
	struct discover_config *discovers;
	int ndiscovers;
};

/*
 * Load and validate a config file, then apply environment overrides
 * (PGWING_<SETTING>, FLY_REGION, PRIMARY_REGION). On error returns NULL and
 * writes "file:line: message" into err.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
/*
 * pgwing --fly: the config of a sidecar for a Fly Postgres app, built from
 * the file it stands for (see config.c's fly_text; doc/config.md.in "Fly with
 * no config file") and the environment. spec is the app, maybe followed by
 * more words of a discover= line ("my-db port=5432"). Errors as config_load.
 */
struct config *config_load_fly(const char *spec, char *err, size_t errlen);
/* The user --fly's logins and probes go through unless PGWING_AUTH_USER names one. */
#define CONFIG_FLY_AUTH_USER "postgres"
/* Load again from where cfg came from: its file, or --fly's words. */
struct config *config_reload(const struct config *cfg, char *err, size_t errlen);
void config_free(struct config *cfg);
/* Free what a backend_config holds (not b itself); copy one into dst, every string new. */
void config_clear_backend(struct backend_config *b);
void config_copy_backend(struct backend_config *dst, const struct backend_config *src);

/*
 * Write cfg as a config file that loads to the same configuration: every
 * setting (defaults and environment overrides included), every backend and
 * discover= line, all values quoted. For --print-config.
 */
void config_write(FILE *f, const struct config *cfg);

/*
 * SET name = value from the console: parse value as the file would into cfg.
 * Only reloadable settings, and none that names a file (is_path): those change
 * by editing the file and RELOAD. A bad value, or one that breaks a rule across
 * settings, leaves cfg as it was and says why in err.
 */
bool config_set(struct config *cfg, const char *name, const char *value, char *err, size_t errlen);

#endif
