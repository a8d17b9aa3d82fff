/*
 * pgwing: the command line. It loads the config, answers --check and
 * --print-config, opens the log and hands the process to the runtime.
 */
#include "pgwing/config.h"
#include "pgwing/log.h"
#include "pgwing/runtime.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
	fprintf(f,
		"pgwing %s: a Postgres connection-routing proxy\n\n"
		"Usage:\n"
		"  pgwing [-d] [-v] [-q] CONFIG   run with the given config file\n"
		"  pgwing --check CONFIG          validate the config and exit\n"
		"  pgwing --print-config CONFIG   print the effective config (file, defaults\n"
		"                                 and environment) as a config file\n"
		"  pgwing [...] --fly DB_APP      no file: a sidecar for the Fly Postgres app\n"
		"                                 DB_APP (also PGWING_FLY_APP with no CONFIG)\n"
		"  pgwing --takeover [-d] CONFIG  take the sockets and idle clients over from the\n"
		"                                 running pgwing (takeover_socket), which exits\n"
		"  pgwing --version | --help\n\n"
		"Options:\n"
		"  -d, --daemon    run in the background (set pidfile and logfile)\n"
		"  -v, --verbose   more logging (repeat for more)\n"
		"  -q, --quiet     log only warnings and errors\n\n"
		"Signals: SIGHUP reloads the config, SIGTERM drains (shutdown_grace,\n"
		"shutdown_timeout), SIGINT stops at once.\n",
		PACKAGE_VERSION);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"daemon", no_argument, NULL, 'd'},       {"verbose", no_argument, NULL, 'v'},
		{"quiet", no_argument, NULL, 'q'},        {"check", no_argument, NULL, 'c'},
		{"print-config", no_argument, NULL, 'p'}, {"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},         {"fly", required_argument, NULL, 'f'},
		{"takeover", no_argument, NULL, 'T'},     {NULL, 0, NULL, 0},
	};
	bool is_daemon = false, is_quiet = false, is_check = false, is_print = false;
	bool is_takeover = false;
	const char *fly = NULL;
	int verbosity = 0, opt, rc;
	char err[512];
	struct config *cfg;

	while ((opt = getopt_long(argc, argv, "dvqh", options, NULL)) != -1) {
		switch (opt) {
		case 'd':
			is_daemon = true;
			break;
		case 'v':
			verbosity++;
			break;
		case 'q':
			is_quiet = true;
			break;
		case 'c':
			is_check = true;
			break;
		case 'p':
			is_print = true;
			break;
		case 'T':
			is_takeover = true;
			break;
		case 'f':
			fly = optarg;
			break;
		case 'V':
			printf("pgwing %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	/* A config file, or --fly; with neither, PGWING_FLY_APP stands for --fly. */
	if (fly == NULL && optind == argc)
		fly = getenv("PGWING_FLY_APP");
	if (optind != argc - (fly == NULL)) {
		usage(stderr);
		return 2;
	}
	cfg = fly != NULL ? config_load_fly(fly, err, sizeof(err))
			  : config_load(argv[optind], err, sizeof(err));
	if (cfg == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (is_print) {
		config_write(stdout, cfg);
		config_free(cfg);
		return 0;
	}
	/* The runtime owns cfg from here, and frees it on failure too. */
	if (!runtime_prepare(cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (is_check) {
		printf("%s: configuration is valid\n", fly != NULL ? fly : argv[optind]);
		runtime_release();
		return 0;
	}
	if (log_open(cfg->logfile, verbosity, is_quiet) < 0) {
		fprintf(stderr, "could not open logfile %s: %s\n", cfg->logfile, strerror(errno));
		runtime_release();
		return 1;
	}
	log_set_format(cfg->log_format);
	rc = runtime_run(is_daemon, is_takeover);
	log_close();
	return rc;
}
