/*
 * The config file, environment overrides, the value syntax, and that the
 * shipped example and reference match the table of settings.
 */
#include "pgwing/config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BACKENDS "[backends]\nprimary = host=127.0.0.1\n"

static char tmpdir[] = "/tmp/test_config.XXXXXX";
static char ini_path[sizeof(tmpdir) + 32];
static char err[512];

/* Write text to tmpdir/test.ini and load it. */
static struct config *load_text(const char *text)
{
	FILE *f = fopen(ini_path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	err[0] = '\0';
	return config_load(ini_path, err, sizeof(err));
}

/* Load text expecting failure; location is ":line: message", or ": message" without a line. */
static void assert_load_error(const char *text, const char *location)
{
	char expected[sizeof(err)];

	snprintf(expected, sizeof(expected), "%s%s", ini_path, location);
	assert_null(load_text(text));
	assert_string_equal(err, expected);
}

static const char *format(const struct config *cfg, const char *name)
{
	static char buf[256];
	const struct setting *s = config_find_setting(name);

	assert_non_null(s);
	config_format_value(cfg, s, buf, sizeof(buf));
	return buf;
}

static char *in_tmpdir(const char *name)
{
	static char path[sizeof(tmpdir) + 64];

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	return path;
}

static void test_defaults(void **state)
{
	struct config *cfg = load_text(BACKENDS);

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->path, ini_path);
	assert_string_equal(cfg->listen_addr, "127.0.0.1");
	assert_int_equal(cfg->rw_port, 5432);
	assert_int_equal(cfg->ro_port, 5433);
	assert_string_equal(cfg->unix_socket_dir, "/tmp");
	assert_int_equal(cfg->auth_type, AUTH_SCRAM);
	assert_string_equal(cfg->auth_file, in_tmpdir("userlist.txt"));
	assert_string_equal(cfg->admin_users, "admin");
	assert_string_equal(cfg->stats_users, "");
	assert_int_equal(cfg->max_client_conn, 10000);
	assert_int_equal(cfg->max_packet_size, 64 * 1024 * 1024);
	assert_int_equal(cfg->server_connect_timeout_ms, 5000);
	assert_int_equal(cfg->client_login_timeout_ms, 60000);
	assert_int_equal(cfg->hold_timeout_ms, 30000);
	assert_string_equal(cfg->logfile, "");
	assert_string_equal(cfg->pidfile, "");
	assert_string_equal(cfg->region, "");
	assert_string_equal(cfg->primary_region, "");
	assert_int_equal(cfg->health_interval_ms, 1000);
	assert_int_equal(cfg->health_timeout_ms, 2000);
	assert_int_equal(cfg->health_fail_count, 2);
	assert_int_equal(cfg->health_rise_count, 1);
	assert_int_equal(cfg->max_replica_lag_ms, 10000);
	assert_int_equal(cfg->ro_fallback, RO_FALLBACK_PRIMARY);
	assert_string_equal(cfg->health_user, "");
	assert_string_equal(cfg->health_dbname, "postgres");

	assert_int_equal(cfg->nbackends, 1);
	assert_string_equal(cfg->backends[0].name, "primary");
	assert_string_equal(cfg->backends[0].host, "127.0.0.1");
	assert_int_equal(cfg->backends[0].port, 5432);
	assert_string_equal(cfg->backends[0].region, "");
	assert_null(cfg->backends[0].sslmode);
	assert_null(cfg->backends[0].wake);
	assert_null(cfg->backends[0].wake_auth_env);
	assert_int_equal(cfg->backends[0].line, 2);
	config_free(cfg);
}

static void test_table(void **state)
{
	static const char *const fixed[] = {
		"listen_addr",  "rw_port", "ro_port",        "unix_socket_dir", "listen_backlog",
		"so_reuseport", "pidfile", "metrics_listen", "dns_nameserver",  "takeover_socket"};
	size_t n;
	const struct setting *settings = config_settings(&n);

	(void)state;
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];
		bool is_fixed = false;

		assert_ptr_equal(config_find_setting(s->name), s);
		assert_true(strlen(s->doc) > 0);
		for (const char *c = s->name; *c != '\0'; c++)
			assert_true(islower((unsigned char)*c) || *c == '_');
		for (size_t j = 0; j < sizeof(fixed) / sizeof(fixed[0]); j++)
			is_fixed = is_fixed || strcmp(s->name, fixed[j]) == 0;
		assert_int_equal(s->is_reloadable, !is_fixed);
	}
	assert_null(config_find_setting("max_clients"));
}

static void test_parse_duration(void **state)
{
	static const struct {
		const char *text;
		int64_t ms; /* -1: invalid */
	} cases[] = {
		{"0", 0},
		{"5", 5000},
		{"5s", 5000},
		{"5 s", 5000},
		{"5\tms", 5},
		{"1500ms", 1500},
		{"2min", 120000},
		{"3h", 10800000},
		{"007s", 7000},
		{"9223372036854775807ms", INT64_MAX},
		{"9223372036854775s", 9223372036854775000},
		{"9223372036854776s", -1}, /* overflows in ms */
		{"9223372036854775808ms", -1},
		{"", -1},
		{"s", -1},
		{"-1s", -1},
		{"+1s", -1},
		{" 1s", -1},
		{"1s ", -1},
		{"1 ", -1},
		{"1.5s", -1},
		{"1m", -1},
		{"1S", -1},
		{"1sec", -1},
		{"1d", -1},
		{"1s2", -1},
		{"1 s s", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		bool ok = config_parse_duration(cases[i].text, &ms);

		if (!ok != (cases[i].ms < 0))
			fail_msg("\"%s\": expected %s", cases[i].text, ok ? "an error" : "success");
		if (ok)
			assert_int_equal(ms, cases[i].ms);
	}
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *text;
		int64_t bytes; /* -1: invalid */
	} cases[] = {
		{"0", 0},
		{"1000", 1000},
		{"1kB", 1024},
		{"64MB", 64 * 1024 * 1024},
		{"8 MB", 8 * 1024 * 1024},
		{"1GB", 1024 * 1024 * 1024},
		{"8589934591GB", 8589934591 * 1024 * 1024 * 1024},
		{"8589934592GB", -1}, /* 2^63 bytes */
		{"99999999999999999999", -1},
		{"", -1},
		{"-1", -1},
		{"1kb", -1},
		{"1KB", -1},
		{"1TB", -1},
		{"1B", -1},
		{"1.5MB", -1},
		{"1MBx", -1},
		{"MB", -1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t bytes = -1;
		bool ok = config_parse_size(cases[i].text, &bytes);

		if (!ok != (cases[i].bytes < 0))
			fail_msg("\"%s\": expected %s", cases[i].text, ok ? "an error" : "success");
		if (ok)
			assert_int_equal(bytes, cases[i].bytes);
	}
}

static void test_parse_bool(void **state)
{
	static const char *const yes[] = {"on", "true", "yes", "1", "ON", "True"};
	static const char *const no[] = {"off", "false", "no", "0", "OFF", "No"};
	static const char *const bad[] = {"", "2", "onn", "y", " on", "enable"};
	bool value;

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		value = false;
		assert_true(config_parse_bool(yes[i], &value));
		assert_true(value);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		value = true;
		assert_true(config_parse_bool(no[i], &value));
		assert_false(value);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(config_parse_bool(bad[i], &value));
}

static void test_values_and_comments(void **state)
{
	struct config *cfg = load_text("; a comment\n"
				       "  # another\n"
				       "\n"
				       "[pgwing] ; trailing\n"
				       "listen_addr = \"10.0.0.1 ; kept\"   ; dropped\n"
				       "admin_users = admin;ops, root#1 # dropped\n"
				       "stats_users = \"say \\\"hi\\\" \\\\ \"\n"
				       "rw_port=6000\r\n"
				       "ro_port =\t6001\n"
				       "auth_type = MD5\n"
				       "ro_fallback = error\n"
				       "max_packet_size = 1 kB\n"
				       "hold_timeout = 250ms\n"
				       "max_replica_lag = 0\n"
				       "region = \"\"\n"
				       "primary_region = iad\n"
				       "unix_socket_dir =\n"
				       "[ backends ]\n"
				       "primary = host=127.0.0.1\n");

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->listen_addr, "10.0.0.1 ; kept");
	assert_string_equal(cfg->admin_users, "admin;ops, root#1");
	assert_string_equal(cfg->stats_users, "say \"hi\" \\ ");
	assert_int_equal(cfg->rw_port, 6000);
	assert_int_equal(cfg->ro_port, 6001);
	assert_int_equal(cfg->auth_type, AUTH_MD5);
	assert_int_equal(cfg->ro_fallback, RO_FALLBACK_ERROR);
	assert_int_equal(cfg->max_packet_size, 1024);
	assert_int_equal(cfg->hold_timeout_ms, 250);
	assert_int_equal(cfg->max_replica_lag_ms, 0);
	assert_string_equal(cfg->region, "");
	assert_string_equal(cfg->primary_region, "iad");
	assert_string_equal(cfg->unix_socket_dir, "");
	config_free(cfg);
}

static void test_paths(void **state)
{
	struct config *cfg = load_text("[pgwing]\n"
				       "auth_file = conf/users.txt\n"
				       "logfile = \"/var/log/pgwing.log\"\n"
				       "pidfile = ../run/pgwing.pid\n"
				       "unix_socket_dir = sockets\n" BACKENDS);
	char expected[sizeof(tmpdir) + 64];
	char cwd[512], rel[512];

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(cfg->auth_file, in_tmpdir("conf/users.txt"));
	assert_string_equal(cfg->logfile, "/var/log/pgwing.log");
	assert_string_equal(cfg->pidfile, in_tmpdir("../run/pgwing.pid"));
	assert_string_equal(cfg->unix_socket_dir, in_tmpdir("sockets"));
	config_free(cfg);

	/* A relative config path is made absolute, and its directory is the base. */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir("/tmp"), 0);
	snprintf(rel, sizeof(rel), "%s/test.ini", tmpdir + strlen("/tmp/"));
	cfg = config_load(rel, err, sizeof(err));
	assert_int_equal(chdir(cwd), 0);
	assert_non_null(cfg);
	assert_string_equal(cfg->path, ini_path);
	snprintf(expected, sizeof(expected), "%s/sockets", tmpdir);
	assert_string_equal(cfg->unix_socket_dir, expected);
	config_free(cfg);
}

static void test_backends(void **state)
{
	struct config *cfg =
		load_text("[backends]\n"
			  "primary = host=10.0.0.1 port=6432 region=iad sslmode=require\n"
			  "\n"
			  "replica-1 = host=/var/run/postgresql region=\"lhr\" ; a comment\n"
			  "sleepy = host=db.internal port=5433 wake=exec:\"fly machine start "
			  "\\\"m 1\\\"; echo\" wake_auth_env=FLY_API_TOKEN\n"
			  "web = host=h wake=http://waker/wake  region=ord#x\n"
			  "fly = host=fdaa::3 wake=fly-api:my-db/148ed123a45678\n"
			  "none = host=h wake=none\n");

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->nbackends, 6);

	assert_string_equal(cfg->backends[0].name, "primary");
	assert_string_equal(cfg->backends[0].host, "10.0.0.1");
	assert_int_equal(cfg->backends[0].port, 6432);
	assert_string_equal(cfg->backends[0].region, "iad");
	assert_string_equal(cfg->backends[0].sslmode, "require");
	assert_null(cfg->backends[0].wake);
	assert_int_equal(cfg->backends[0].line, 2);

	assert_string_equal(cfg->backends[1].name, "replica-1");
	assert_string_equal(cfg->backends[1].host, "/var/run/postgresql");
	assert_int_equal(cfg->backends[1].port, 5432);
	assert_string_equal(cfg->backends[1].region, "lhr");
	assert_null(cfg->backends[1].sslmode);
	assert_int_equal(cfg->backends[1].line, 4);

	assert_string_equal(cfg->backends[2].wake, "exec:fly machine start \"m 1\"; echo");
	assert_string_equal(cfg->backends[2].wake_auth_env, "FLY_API_TOKEN");
	assert_int_equal(cfg->backends[2].port, 5433);

	assert_string_equal(cfg->backends[3].wake, "http://waker/wake");
	assert_string_equal(cfg->backends[3].region, "ord#x");
	assert_null(cfg->backends[3].wake_auth_env);

	assert_string_equal(cfg->backends[4].wake, "fly-api:my-db/148ed123a45678");
	/* wake=none on a backend line is no wake, as without it. */
	assert_null(cfg->backends[5].wake);
	config_free(cfg);
}

/* discover= lines: the source, then a backend line's words for every backend found. */
static void test_discover(void **state)
{
	struct config *cfg = load_text("[backends]\n"
				       "discover = fly:my-db sslmode=disable\n"
				       "discover = dns:db.internal regions=ams,fra port=6432\n"
				       "discover = dns:replicas.example.com region=iad\n");
	const struct discover_config *d;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->nbackends, 0);
	assert_int_equal(cfg->ndiscovers, 3);
	d = &cfg->discovers[0];
	assert_string_equal(d->source, "fly:my-db");
	assert_null(d->regions);
	assert_int_equal(d->tmpl.port, 5433); /* Postgres itself on Fly's images */
	assert_string_equal(d->tmpl.sslmode, "disable");
	assert_string_equal(d->tmpl.region, "");
	assert_null(d->tmpl.host);
	assert_int_equal(d->tmpl.line, 2);
	d = &cfg->discovers[1];
	assert_string_equal(d->source, "dns:db.internal");
	assert_string_equal(d->regions, "ams,fra");
	assert_int_equal(d->tmpl.port, 6432);
	d = &cfg->discovers[2];
	assert_int_equal(d->tmpl.port, 5432);
	assert_string_equal(d->tmpl.region, "iad");
	assert_null(d->regions);
	config_free(cfg);

	assert_load_error("[backends]\ndiscover = consul:db\n",
			  ":2: discover: expected fly:<app> or dns:<name>, found \"consul:db\"");
	assert_load_error("[backends]\ndiscover = fly:\n",
			  ":2: discover: expected fly:<app> or dns:<name>, found \"fly:\"");
	assert_load_error("[backends]\ndiscover = dns:a/b\n",
			  ":2: discover: expected fly:<app> or dns:<name>, found \"dns:a/b\"");
	assert_load_error("[backends]\ndiscover = dns:db host=10.0.0.1\n",
			  ":2: discover: the hosts come from DNS; no host=");
	assert_load_error("[backends]\ndiscover = fly:db regions=ams\n",
			  ":2: discover: regions= is for dns: without region=");
	assert_load_error("[backends]\ndiscover = dns:db regions=ams region=fra\n",
			  ":2: discover: regions= is for dns: without region=");
	assert_load_error("[backends]\ndiscover = dns:db colour=red\n",
			  ":2: backend \"discover\": unknown key \"colour\"");
}

static void test_errors(void **state)
{
	static const struct {
		const char *text;
		const char *location;
	} cases[] = {
		{"[pgwing]\nmax_clients = 10\n" BACKENDS, ":2: unknown setting \"max_clients\""},
		{"rw_port = 1\n" BACKENDS, ":1: setting \"rw_port\" is outside any section"},
		{"[pgbouncer]\n", ":1: unknown section \"[pgbouncer]\""},
		{"[pgwing\n", ":1: syntax error in section header: expected \"[name]\""},
		{"[pgwing] x\n", ":1: syntax error in section header: expected \"[name]\""},
		{"[pgwing]\nrw_port\n",
		 ":2: syntax error: expected \"name = value\" or \"[section]\""},
		{"[pgwing]\n= 5\n", ":2: syntax error: expected \"name = value\" or \"[section]\""},
		{"[pgwing]\nregion = \"iad\n", ":2: unterminated quoted string"},
		{"[pgwing]\nregion = \"iad\" x\n",
		 ":2: unexpected text after the quoted value of \"region\""},
		{"[pgwing]\nrw_port = 1\nrw_port = 2\n",
		 ":3: setting \"rw_port\" is already set on line 2"},
		{"[pgwing]\nrw_port = abc\n",
		 ":2: invalid value for setting \"rw_port\": \"abc\" (expected a whole number)"},
		{"[pgwing]\nrw_port = -1\n",
		 ":2: invalid value for setting \"rw_port\": \"-1\" (expected a whole number)"},
		{"[pgwing]\nrw_port = 70000\n",
		 ":2: 70000 is outside the valid range for setting \"rw_port\" (1 .. 65535)"},
		{"[pgwing]\nro_port = 0\n",
		 ":2: 0 is outside the valid range for setting \"ro_port\" (1 .. 65535)"},
		{"[pgwing]\nmax_client_conn = 99999999999\n",
		 ":2: 99999999999 is outside the valid range for setting \"max_client_conn\" (1 .. "
		 "2147483647)"},
		{"[pgwing]\nhealth_fail_count = 0\n",
		 ":2: 0 is outside the valid range for setting \"health_fail_count\" (1 .. "
		 "2147483647)"},
		{"[pgwing]\nhealth_timeout = 0\n",
		 ":2: 0 is outside the valid range for setting \"health_timeout\" (1ms .. 24h)"},
		{"[pgwing]\nhold_timeout = 25h\n",
		 ":2: 25h is outside the valid range for setting \"hold_timeout\" (1ms .. 24h)"},
		{"[pgwing]\nhealth_interval = 5x\n",
		 ":2: invalid value for setting \"health_interval\": \"5x\" (expected a duration "
		 "such as 500ms, 5s, 2min or 1h)"},
		{"[pgwing]\nmax_packet_size = 1000\n", ":2: 1000 is outside the valid range for "
						       "setting \"max_packet_size\" (1kB .. 1GB)"},
		{"[pgwing]\nmax_packet_size = 2GB\n",
		 ":2: 2GB is outside the valid range for setting \"max_packet_size\" (1kB .. 1GB)"},
		{"[pgwing]\nmax_packet_size = 1XB\n",
		 ":2: invalid value for setting \"max_packet_size\": \"1XB\" (expected a size such "
		 "as 512kB, 64MB or 1GB)"},
		{"[pgwing]\nauth_type = password\n",
		 ":2: invalid value for setting \"auth_type\": \"password\" (expected one of "
		 "trust, plain, md5, scram-sha-256)"},
		{"[pgwing]\nhealth_dbname = \"\"\n",
		 ":2: setting \"health_dbname\" must not be empty"},
		{"[pgwing]\n\nunix_socket_dir = "
		 "/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/"
		 "0123456789/0123\n",
		 ":3: value for setting \"unix_socket_dir\" is too long (at most 92 bytes): "
		 "\"/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/0123456789/"
		 "0123456789/0123\""},
		{"[backends]\nprimary = host=a\nprimary = host=b\n",
		 ":3: duplicate backend \"primary\" (first defined on line 2)"},
		{"[backends]\nprimary = port=5432\n", ":2: backend \"primary\" has no host"},
		{"[backends]\nprimary = host=\"\"\n",
		 ":2: backend \"primary\": invalid host \"\" (must not be empty)"},
		{"[backends]\nprimary = host=a user=x\n",
		 ":2: backend \"primary\": unknown key \"user\""},
		{"[backends]\nprimary = host=a host=b\n",
		 ":2: backend \"primary\": \"host\" is given twice"},
		{"[backends]\nprimary = host=a port=1 port=2\n",
		 ":2: backend \"primary\": \"port\" is given twice"},
		{"[backends]\nprimary = host=a port=0\n",
		 ":2: backend \"primary\": invalid port \"0\" (expected 1 .. 65535)"},
		{"[backends]\nprimary = host=a port=5432x\n",
		 ":2: backend \"primary\": invalid port \"5432x\" (expected 1 .. 65535)"},
		{"[backends]\nprimary = host=a sslmode=maybe\n",
		 ":2: backend \"primary\": invalid sslmode \"maybe\" (expected disable, allow, "
		 "prefer, require, verify-ca or verify-full)"},
		{"[backends]\nprimary = host=a wake=\"start it\"\n",
		 ":2: backend \"primary\": invalid wake \"start it\" (expected exec:\"command\", "
		 "an http:// URL or fly-api:<app>/<machine_id>)"},
		{"[backends]\nprimary = host=a wake=exec:\n",
		 ":2: backend \"primary\": invalid wake \"exec:\" (expected exec:\"command\", an "
		 "http:// URL or fly-api:<app>/<machine_id>)"},
		/* The id goes into the API's URL path: nothing that would change the path. */
		{"[backends]\nprimary = host=a wake=fly-api:db/m1/../x\n",
		 ":2: backend \"primary\": invalid wake \"fly-api:db/m1/../x\" (expected "
		 "exec:\"command\", an http:// URL or fly-api:<app>/<machine_id>)"},
		{"[backends]\nprimary = host=a wake=fly-api:db/m1?x\n",
		 ":2: backend \"primary\": invalid wake \"fly-api:db/m1?x\" (expected "
		 "exec:\"command\", an http:// URL or fly-api:<app>/<machine_id>)"},
		{"[backends]\nprimary = host=a wake=fly-api:/m1\n",
		 ":2: backend \"primary\": invalid wake \"fly-api:/m1\" (expected "
		 "exec:\"command\", an http:// URL or fly-api:<app>/<machine_id>)"},
		{"[backends]\nprimary = host=a wake=fly-api\n",
		 ":2: backend \"primary\": wake=fly-api needs the machine here: "
		 "fly-api:<app>/<machine_id>"},
		{"[backends]\ndiscover = dns:db.internal wake=fly-api\n",
		 ":2: discover: wake=fly-api is for fly: lines, without an app or machine "
		 "(discovery gives both)"},
		{"[backends]\ndiscover = fly:db wake=fly-api:db/m1\n",
		 ":2: discover: wake=fly-api is for fly: lines, without an app or machine "
		 "(discovery gives both)"},
		{"[backends]\nprimary = host=a wake_auth_env=1TOKEN\n",
		 ":2: backend \"primary\": invalid wake_auth_env \"1TOKEN\" (expected the name of "
		 "an environment variable)"},
		{"[backends]\nprimary = host=a localhost\n",
		 ":2: backend \"primary\": expected key=value, found \"localhost\""},
		{"[backends]\nmy primary = host=a\n",
		 ":2: invalid backend name \"my primary\" (use letters, digits, _ . -)"},
		/* Found by fuzz_config: this was a backend named "". */
		{"[backends]\n\v = host=a\n",
		 ":2: syntax error: expected \"name = value\" or \"[section]\""},
		{"", ": no backends: add at least one (or a discover= line) to [backends]"},
		{"[pgwing]\n[backends]\n",
		 ": no backends: add at least one (or a discover= line) to [backends]"},
		{"[pgwing]\nro_port = 5432\n" BACKENDS,
		 ": rw_port and ro_port must differ (both are 5432)"},
		{"[pgwing]\nadmin_users = \" , \"\n" BACKENDS,
		 ": health_user is empty and admin_users has no user to use instead"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_load_error(cases[i].text, cases[i].location);
}

static void test_missing_file(void **state)
{
	char expected[sizeof(err)];

	(void)state;
	snprintf(expected, sizeof(expected), "%s: No such file or directory",
		 in_tmpdir("nope.ini"));
	assert_null(config_load(in_tmpdir("nope.ini"), err, sizeof(err)));
	assert_string_equal(err, expected);
}

static void test_env(void **state)
{
	struct config *cfg;

	(void)state;
	setenv("PGWING_RW_PORT", "6000", 1);
	setenv("PGWING_HOLD_TIMEOUT", "2min", 1);
	setenv("PGWING_AUTH_FILE", "users", 1);
	setenv("FLY_REGION", "iad", 1);
	setenv("PRIMARY_REGION", "ord", 1);
	cfg = load_text("[pgwing]\nrw_port = 7000\nregion = lhr\n" BACKENDS);
	assert_non_null(cfg);
	assert_int_equal(cfg->rw_port, 6000);
	assert_int_equal(cfg->hold_timeout_ms, 120000);
	assert_string_equal(cfg->auth_file, in_tmpdir("users"));
	assert_string_equal(cfg->region, "iad");
	assert_string_equal(cfg->primary_region, "ord");
	config_free(cfg);

	/* PGWING_* beats the platform's variables. */
	setenv("PGWING_REGION", "syd", 1);
	setenv("PGWING_PRIMARY_REGION", "", 1);
	cfg = load_text(BACKENDS);
	assert_non_null(cfg);
	assert_string_equal(cfg->region, "syd");
	assert_string_equal(cfg->primary_region, "");
	config_free(cfg);

	setenv("PGWING_RW_PORT", "abc", 1);
	assert_null(load_text(BACKENDS));
	assert_string_equal(err,
			    "environment PGWING_RW_PORT: invalid value for setting \"rw_port\": "
			    "\"abc\" (expected a whole number)");

	/* The environment counts in the checks across settings. */
	setenv("PGWING_RW_PORT", "5433", 1);
	assert_load_error(BACKENDS, ": rw_port and ro_port must differ (both are 5433)");

	unsetenv("PGWING_RW_PORT");
	unsetenv("PGWING_HOLD_TIMEOUT");
	unsetenv("PGWING_AUTH_FILE");
	unsetenv("PGWING_REGION");
	unsetenv("PGWING_PRIMARY_REGION");
	unsetenv("FLY_REGION");
	unsetenv("PRIMARY_REGION");
}

static void test_fly(void **state)
{
	struct config *cfg = config_load_fly("my-db port=6000 sslmode=require", err, sizeof(err));
	struct config *again;

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->nbackends, 0);
	assert_int_equal(cfg->ndiscovers, 1);
	assert_string_equal(cfg->discovers[0].source, "fly:my-db");
	assert_int_equal(cfg->discovers[0].tmpl.port, 6000);
	assert_string_equal(cfg->discovers[0].tmpl.sslmode, "require");
	assert_null(cfg->discovers[0].tmpl.wake); /* discovery's fly-api */
	assert_int_equal(cfg->rw_port, 5432);
	assert_int_equal(cfg->ro_port, 5433);
	assert_string_equal(cfg->auth_file, "/dev/null");
	assert_string_equal(cfg->auth_user, CONFIG_FLY_AUTH_USER);
	assert_string_equal(cfg->health_user, CONFIG_FLY_AUTH_USER);
	assert_string_equal(cfg->path, "--fly my-db port=6000 sslmode=require");
	/* A reload builds it again from the same words. */
	again = config_reload(cfg, err, sizeof(err));
	assert_non_null(again);
	assert_string_equal(again->fly_spec, "my-db port=6000 sslmode=require");
	assert_int_equal(again->discovers[0].tmpl.port, 6000);
	config_free(again);
	config_free(cfg);

	/* PGWING_AUTH_USER is the probes' user too, unless PGWING_HEALTH_USER says otherwise. */
	setenv("PGWING_AUTH_USER", "pg\"wing", 1);
	setenv("FLY_REGION", "ams", 1);
	cfg = config_load_fly("my-db", err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->auth_user, "pg\"wing");
	assert_string_equal(cfg->health_user, "pg\"wing");
	assert_string_equal(cfg->region, "ams");
	assert_int_equal(cfg->discovers[0].tmpl.port, 5433);
	config_free(cfg);
	setenv("PGWING_HEALTH_USER", "probe", 1);
	cfg = config_load_fly("my-db", err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->health_user, "probe");
	config_free(cfg);
	unsetenv("PGWING_HEALTH_USER");
	unsetenv("PGWING_AUTH_USER");
	unsetenv("FLY_REGION");

	assert_null(config_load_fly("my-db\n[pgwing]\nlogfile = /tmp/x", err, sizeof(err)));
	assert_string_equal(err, "--fly my-db\n[pgwing]\nlogfile = /tmp/x: a line break is not "
				 "allowed");
	assert_null(config_load_fly("my/db", err, sizeof(err)));
	assert_non_null(
		strstr(err, "discover: expected fly:<app> or dns:<name>, found \"fly:my/db\""));
}

static void test_format_value(void **state)
{
	struct config *cfg = load_text("[pgwing]\n"
				       "server_connect_timeout = 1500ms\n"
				       "client_login_timeout = 120\n"
				       "hold_timeout = 7200000 ms\n"
				       "health_interval = 60000ms\n"
				       "max_replica_lag = 0\n"
				       "max_packet_size = 2048 kB\n"
				       "auth_type = Trust\n" BACKENDS);

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(format(cfg, "server_connect_timeout"), "1500ms");
	assert_string_equal(format(cfg, "client_login_timeout"), "2min");
	assert_string_equal(format(cfg, "hold_timeout"), "2h");
	assert_string_equal(format(cfg, "health_interval"), "1min");
	assert_string_equal(format(cfg, "health_timeout"), "2s");
	assert_string_equal(format(cfg, "max_replica_lag"), "0");
	assert_string_equal(format(cfg, "max_packet_size"), "2MB");
	assert_string_equal(format(cfg, "auth_type"), "trust");
	assert_string_equal(format(cfg, "ro_fallback"), "primary");
	assert_string_equal(format(cfg, "rw_port"), "5432");
	assert_string_equal(format(cfg, "admin_users"), "admin");
	config_free(cfg);

	cfg = load_text("[pgwing]\nmax_packet_size = 1025\n" BACKENDS);
	assert_non_null(cfg);
	assert_string_equal(format(cfg, "max_packet_size"), "1025");
	config_free(cfg);
}

static void test_format_range(void **state)
{
	char buf[128];

	(void)state;
	config_format_range(config_find_setting("rw_port"), buf, sizeof(buf));
	assert_string_equal(buf, "1 .. 65535");
	config_format_range(config_find_setting("max_replica_lag"), buf, sizeof(buf));
	assert_string_equal(buf, "0 .. 24h");
	config_format_range(config_find_setting("ro_fallback"), buf, sizeof(buf));
	assert_string_equal(buf, "primary, error");
	config_format_range(config_find_setting("health_dbname"), buf, sizeof(buf));
	assert_string_equal(buf, "non-empty");
	config_format_range(config_find_setting("stats_users"), buf, sizeof(buf));
	assert_string_equal(buf, "");
}

/* Every setting, formatted and written back, loads to the same value. */
static void test_format_round_trip(void **state)
{
	struct config *a = load_text("[pgwing]\n"
				     "listen_addr = 0.0.0.0, ::\n"
				     "rw_port = 6432\n"
				     "ro_port = 6433\n"
				     "unix_socket_dir = \"\"\n"
				     "auth_type = md5\n"
				     "auth_file = \"/etc/pgwing/user list.txt\"\n"
				     "admin_users = a, b\n"
				     "stats_users = c\n"
				     "max_client_conn = 123\n"
				     "max_packet_size = 1234567\n"
				     "server_connect_timeout = 1500ms\n"
				     "client_login_timeout = 2min\n"
				     "hold_timeout = 90\n"
				     "logfile = log/pgwing.log\n"
				     "pidfile = /run/pgwing.pid\n"
				     "region = iad\n"
				     "primary_region = ord\n"
				     "health_interval = 250 ms\n"
				     "health_timeout = 1h\n"
				     "health_fail_count = 3\n"
				     "health_rise_count = 4\n"
				     "max_replica_lag = 0\n"
				     "ro_fallback = error\n"
				     "health_user = probe\n"
				     "health_dbname = template1\n" BACKENDS);
	char text[4096], value[256];
	size_t n, len = 0;
	const struct setting *settings = config_settings(&n);
	struct config *b;

	(void)state;
	assert_non_null(a);
	len += snprintf(text + len, sizeof(text) - len, "[pgwing]\n");
	for (size_t i = 0; i < n; i++) {
		config_format_value(a, &settings[i], value, sizeof(value));
		len += snprintf(text + len, sizeof(text) - len, "%s = \"%s\"\n", settings[i].name,
				value);
	}
	snprintf(text + len, sizeof(text) - len, BACKENDS);
	b = load_text(text);
	assert_non_null(b);
	for (size_t i = 0; i < n; i++) {
		char again[256];

		config_format_value(a, &settings[i], value, sizeof(value));
		config_format_value(b, &settings[i], again, sizeof(again));
		assert_string_equal(value, again);
		assert_false(config_is_changed(a, b, &settings[i]));
	}
	config_free(a);
	config_free(b);
}

/* SET from the console: the file's syntax and ranges, reloadable settings only. */
/* server_require_auth is parsed into bits as libpq reads require_auth: all ! or none. */
static void test_server_require_auth(void **state)
{
	struct config *cfg = load_text(BACKENDS);

	(void)state;
	assert_non_null(cfg);
	assert_int_equal(cfg->server_auth_methods, SERVER_AUTH_ANY);
	assert_int_equal(cfg->server_scram_max_iterations, 32768);
	assert_true(
		config_set(cfg, "server_require_auth", "scram-sha-256, none", err, sizeof(err)));
	assert_int_equal(cfg->server_auth_methods, SERVER_AUTH_SCRAM | SERVER_AUTH_NONE);
	assert_true(config_set(cfg, "server_require_auth", "!password", err, sizeof(err)));
	assert_int_equal(cfg->server_auth_methods, SERVER_AUTH_ANY & ~SERVER_AUTH_PASSWORD);

	assert_false(config_set(cfg, "server_require_auth", "md5,!password", err, sizeof(err)));
	assert_non_null(strstr(err, "either every method has ! or none has"));
	assert_false(config_set(cfg, "server_require_auth", "scram-sha-256,gss", err, sizeof(err)));
	assert_non_null(strstr(err, "unknown method \"gss\""));
	assert_false(config_set(cfg, "server_require_auth", "!scram-sha-256,!md5,!password,!none",
				err, sizeof(err)));
	assert_non_null(strstr(err, "refuses every method"));
	/* Refused values leave the last good one, string and bits alike. */
	assert_string_equal(cfg->server_require_auth, "!password");
	assert_int_equal(cfg->server_auth_methods, SERVER_AUTH_ANY & ~SERVER_AUTH_PASSWORD);
	config_free(cfg);
}

static void test_set(void **state)
{
	struct config *cfg = load_text(BACKENDS);

	(void)state;
	assert_non_null(cfg);
	assert_true(config_set(cfg, "hold_timeout", "500ms", err, sizeof(err)));
	assert_int_equal(cfg->hold_timeout_ms, 500);
	assert_true(config_set(cfg, "max_packet_size", "2MB", err, sizeof(err)));
	assert_int_equal(cfg->max_packet_size, 2 * 1024 * 1024);
	assert_true(config_set(cfg, "ro_fallback", "ERROR", err, sizeof(err)));
	assert_int_equal(cfg->ro_fallback, RO_FALLBACK_ERROR);
	assert_true(config_set(cfg, "region", "", err, sizeof(err)));
	assert_string_equal(cfg->region, "");

	assert_false(config_set(cfg, "hold_timeout", "soon", err, sizeof(err)));
	assert_non_null(strstr(err, "expected a duration"));
	assert_int_equal(cfg->hold_timeout_ms, 500);
	assert_false(config_set(cfg, "max_packet_size", "2GB", err, sizeof(err)));
	assert_non_null(strstr(err, "outside the valid range"));
	assert_false(config_set(cfg, "rw_port", "6000", err, sizeof(err)));
	assert_non_null(strstr(err, "cannot change while pgwing runs"));
	assert_int_equal(cfg->rw_port, 5432);
	assert_false(config_set(cfg, "no_such", "1", err, sizeof(err)));
	assert_string_equal(err, "unknown setting \"no_such\"");
	/* A value that breaks a rule across settings is refused and the old one stays. */
	assert_false(config_set(cfg, "admin_users", "", err, sizeof(err)));
	assert_non_null(strstr(err, "SET admin_users: health_user is empty"));
	assert_string_equal(cfg->admin_users, "admin");
	config_free(cfg);
}

/*
 * No file from the console: SET logfile would write chosen lines into any
 * file pgwing may write, SET auth_file or a TLS file would read users or keys
 * from one of the console user's choosing. Every file setting is refused,
 * reloadable or not, and keeps its value; RELOAD of the file still changes it.
 */
static void test_set_refuses_paths(void **state)
{
	struct config *cfg = load_text("[pgwing]\nlogfile = pgwing.log\n" BACKENDS);
	char before[512], after[512];
	size_t n;
	const struct setting *settings = config_settings(&n);
	int npaths = 0;

	(void)state;
	assert_non_null(cfg);
	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];

		if (!s->is_path)
			continue;
		npaths++;
		config_format_value(cfg, s, before, sizeof(before));
		assert_false(config_set(cfg, s->name, "/tmp/planted.sh", err, sizeof(err)));
		if (s->is_reloadable)
			assert_non_null(strstr(err, "names a file and cannot be changed with SET"));
		config_format_value(cfg, s, after, sizeof(after));
		assert_string_equal(before, after);
	}
	/* auth_file, logfile, pidfile, unix_socket_dir, takeover_socket and the six TLS files. */
	assert_int_equal(npaths, 11);
	snprintf(before, sizeof(before), "%s/pgwing.log", tmpdir);
	assert_string_equal(cfg->logfile, before);
	config_free(cfg);
}

static void test_is_changed(void **state)
{
	struct config *a = load_text(BACKENDS);
	struct config *b = load_text("[pgwing]\nrw_port = 6000\nregion = x\nhold_timeout = 30\n"
				     "auth_type = md5\n" BACKENDS);

	(void)state;
	assert_non_null(a);
	assert_non_null(b);
	assert_true(config_is_changed(a, b, config_find_setting("rw_port")));
	assert_true(config_is_changed(a, b, config_find_setting("region")));
	assert_true(config_is_changed(a, b, config_find_setting("auth_type")));
	assert_false(config_is_changed(a, b, config_find_setting("hold_timeout")));
	assert_false(config_is_changed(a, b, config_find_setting("listen_addr")));
	config_free(a);
	config_free(b);
}

static void test_list_contains(void **state)
{
	(void)state;
	assert_true(config_list_contains("admin, ops", "ops"));
	assert_true(config_list_contains("admin, ops", "admin"));
	assert_true(config_list_contains("  admin  ,ops\t", "admin"));
	assert_true(config_list_contains("a,,b", "b"));
	assert_false(config_list_contains("admin, ops", "op"));
	assert_false(config_list_contains("admin, ops", "adm"));
	assert_false(config_list_contains("admin, ops", "Admin"));
	assert_false(config_list_contains("admin ops", "ops"));
	assert_false(config_list_contains("", "admin"));
	assert_false(config_list_contains("a,,b", ""));
}

static char *read_whole_file(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long len;

	if (f == NULL)
		fail_msg("%s: cannot open", path);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	text = malloc((size_t)len + 1);
	assert_non_null(text);
	assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
	text[len] = '\0';
	fclose(f);
	return text;
}

/* The reference has one exact row per setting, so it cannot drift from the table. */
static void test_doc_matches_table(void **state)
{
	static const char *const type_names[] = {
		[SETTING_STRING] = "string",     [SETTING_INT] = "integer", [SETTING_BOOL] = "bool",
		[SETTING_DURATION] = "duration", [SETTING_SIZE] = "size",   [SETTING_ENUM] = "enum",
	};
	char *doc = read_whole_file(TOP_SRCDIR "/doc/config.md");
	size_t n;
	const struct setting *settings = config_settings(&n);
	int missing = 0;

	(void)state;
	for (size_t i = 0; i < n; i++) {
		const struct setting *s = &settings[i];
		char range[128], dflt[128], row[512];

		config_format_range(s, range, sizeof(range));
		if (s->default_value[0] == '\0')
			snprintf(dflt, sizeof(dflt), "*empty*");
		else
			snprintf(dflt, sizeof(dflt), "`%s`", s->default_value);
		snprintf(row, sizeof(row), "| `%s` | %s | %s | %s | %s | %s |", s->name,
			 type_names[s->type], dflt, range[0] != '\0' ? range : "any",
			 s->is_reloadable ? "yes" : "no", s->doc);
		if (strstr(doc, row) == NULL) {
			print_error("doc/config.md lacks the row:\n%s\n", row);
			missing++;
		}
	}
	free(doc);
	assert_int_equal(missing, 0);
}

static void test_example_config_loads(void **state)
{
	struct config *cfg = config_load(TOP_SRCDIR "/etc/pgwing.ini", err, sizeof(err));

	(void)state;
	if (cfg == NULL)
		fail_msg("%s", err);
	assert_true(cfg->nbackends >= 1);
	assert_string_equal(cfg->backends[0].name, "primary");
	assert_string_equal(cfg->backends[0].host, "127.0.0.1");
	assert_int_equal(cfg->backends[0].port, 6432);
	assert_string_equal(cfg->backends[0].region, "local");
	config_free(cfg);
}

/* The example shows every setting, so users can find them all in one place. */
static void test_example_config_is_complete(void **state)
{
	char *example = read_whole_file(TOP_SRCDIR "/etc/pgwing.ini");
	size_t n;
	const struct setting *settings = config_settings(&n);

	(void)state;
	for (size_t i = 0; i < n; i++) {
		char line[128];

		snprintf(line, sizeof(line), "\n;%s =", settings[i].name);
		if (strstr(example, line) == NULL)
			fail_msg("etc/pgwing.ini does not show %s", settings[i].name);
	}
	free(example);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_values_and_comments),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_backends),
		cmocka_unit_test(test_discover),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_fly),
		cmocka_unit_test(test_format_value),
		cmocka_unit_test(test_format_range),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_server_require_auth),
		cmocka_unit_test(test_set),
		cmocka_unit_test(test_set_refuses_paths),
		cmocka_unit_test(test_is_changed),
		cmocka_unit_test(test_list_contains),
		cmocka_unit_test(test_doc_matches_table),
		cmocka_unit_test(test_example_config_loads),
		cmocka_unit_test(test_example_config_is_complete),
	};
	size_t n;
	const struct setting *settings = config_settings(&n);
	int failed;

	/* The caller's environment must not leak into what the tests load. */
	unsetenv("FLY_REGION");
	unsetenv("PRIMARY_REGION");
	for (size_t i = 0; i < n; i++) {
		char var[64];

		snprintf(var, sizeof(var), "PGWING_%s", settings[i].name);
		for (char *c = var; *c != '\0'; c++)
			*c = (char)toupper((unsigned char)*c);
		unsetenv(var);
	}

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(ini_path, sizeof(ini_path), "%s/test.ini", tmpdir);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	unlink(ini_path);
	rmdir(tmpdir);
	return failed;
}
