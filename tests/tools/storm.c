/*
 * storm: N libpq clients connect at the same moment, then hold their sessions.
 *
 *   storm CONNINFO N SAMPLE
 *
 * Every connection is started before any is polled (PQconnectStart), so the
 * server sees N simultaneous logins. Prints, on stdout:
 *
 *   logins ok=A rejected=B failed=C pending=D ok_max_ms=E rejected_max_ms=F
 *
 * (rejected: the login failed with SQLSTATE 53300; failed: any other error,
 * the first few on stderr; pending: no answer within 120 s). After a line on
 * stdin it runs "SELECT 1" at once on SAMPLE of the logged-in sessions,
 * spread over them:
 *
 *   queries ok=G of H
 *
 * then holds every session until another line (or EOF) on stdin, closes them
 * all, prints "closed" and exits 0. Used by tests/t/080_storm.pl.
 */
#include <libpq-fe.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define LOGIN_DEADLINE_MS 120000
#define REPORT_FAILURES   5

enum conn_state { CONNECTING, LOGGED_IN, REJECTED, FAILED, QUERYING, QUERIED };

struct conn {
	PGconn *pg;
	enum conn_state state;
	PostgresPollingStatusType want;
	long done_ms;
};

static long elapsed_ms(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* N sessions need N descriptors: take all the hard limit allows, as pgwing does. */
static void raise_fd_limit(int n)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < (rlim_t)n + 16)
		fprintf(stderr, "storm: open files limit %lu is too low for %d connections\n",
			(unsigned long)rl.rlim_cur, n);
}

static int nfailures;

static void report_failure(PGconn *pg)
{
	if (nfailures++ < REPORT_FAILURES)
		fprintf(stderr, "storm: %s", pg ? PQerrorMessage(pg) : "out of memory\n");
}

static void step_login(struct conn *cn, const struct timespec *t0)
{
	cn->want = PQconnectPoll(cn->pg);
	if (cn->want == PGRES_POLLING_OK) {
		cn->state = LOGGED_IN;
	} else if (cn->want == PGRES_POLLING_FAILED) {
		/* Verbose errors carry the SQLSTATE: "FATAL:  53300: ..." */
		cn->state = strstr(PQerrorMessage(cn->pg), "53300") != NULL ? REJECTED : FAILED;
		if (cn->state == FAILED)
			report_failure(cn->pg);
	} else {
		return;
	}
	cn->done_ms = elapsed_ms(t0);
}

static void step_query(struct conn *cn)
{
	PGresult *res;

	if (!PQconsumeInput(cn->pg)) {
		report_failure(cn->pg);
		cn->state = FAILED;
		return;
	}
	if (PQisBusy(cn->pg))
		return;
	cn->state = FAILED;
	while ((res = PQgetResult(cn->pg)) != NULL) {
		if (PQresultStatus(res) != PGRES_TUPLES_OK)
			report_failure(cn->pg);
		else if (PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "1") == 0)
			cn->state = QUERIED;
		PQclear(res);
	}
}

/* Poll the connections in state `from` until none is left in it, or the deadline. */
static void run_until_done(struct conn *c, int n, enum conn_state from, struct pollfd *pfds,
			   int *map, const struct timespec *t0, long deadline_ms)
{
	for (;;) {
		int np = 0;

		for (int i = 0; i < n; i++) {
			if (c[i].state != from)
				continue;
			pfds[np].fd = PQsocket(c[i].pg);
			pfds[np].events = c[i].want == PGRES_POLLING_WRITING ? POLLOUT : POLLIN;
			pfds[np].revents = 0;
			map[np++] = i;
		}
		if (np == 0 || elapsed_ms(t0) > deadline_ms)
			return;
		if (poll(pfds, (nfds_t)np, 200) < 0 && errno != EINTR) {
			perror("storm: poll");
			exit(1);
		}
		for (int k = 0; k < np; k++) {
			if (pfds[k].revents == 0)
				continue;
			if (from == CONNECTING)
				step_login(&c[map[k]], t0);
			else
				step_query(&c[map[k]]);
		}
	}
}

static void wait_for_line(void)
{
	char line[16];

	if (fgets(line, sizeof(line), stdin) == NULL && ferror(stdin))
		perror("storm: stdin");
}

int main(int argc, char **argv)
{
	int n, sample, counts[QUERIED + 1] = {0}, nqueried = 0, nsampled = 0;
	long max_ms[QUERIED + 1] = {0};
	struct timespec t0;
	struct conn *c;
	struct pollfd *pfds;
	int *map;

	if (argc != 4 || (n = atoi(argv[2])) < 1 || (sample = atoi(argv[3])) < 0) {
		fprintf(stderr, "usage: %s CONNINFO N SAMPLE\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(n);
	c = calloc((size_t)n, sizeof(*c));
	pfds = calloc((size_t)n, sizeof(*pfds));
	map = calloc((size_t)n, sizeof(*map));
	if (c == NULL || pfds == NULL || map == NULL)
		return 1;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < n; i++) {
		c[i].pg = PQconnectStart(argv[1]);
		c[i].want = PGRES_POLLING_WRITING;
		if (c[i].pg == NULL || PQstatus(c[i].pg) == CONNECTION_BAD) {
			report_failure(c[i].pg);
			c[i].state = FAILED;
			continue;
		}
		PQsetErrorVerbosity(c[i].pg, PQERRORS_VERBOSE);
	}
	run_until_done(c, n, CONNECTING, pfds, map, &t0, LOGIN_DEADLINE_MS);
	for (int i = 0; i < n; i++) {
		counts[c[i].state]++;
		if (c[i].done_ms > max_ms[c[i].state])
			max_ms[c[i].state] = c[i].done_ms;
	}
	printf("logins ok=%d rejected=%d failed=%d pending=%d ok_max_ms=%ld rejected_max_ms=%ld\n",
	       counts[LOGGED_IN], counts[REJECTED], counts[FAILED], counts[CONNECTING],
	       max_ms[LOGGED_IN], max_ms[REJECTED]);
	fflush(stdout);
	wait_for_line();

	/* Every (ok/sample)-th session runs a query, all at once. */
	for (int i = 0, seen = 0; i < n && sample > 0; i++) {
		if (c[i].state != LOGGED_IN)
			continue;
		if (seen++ % (counts[LOGGED_IN] / sample + 1) != 0)
			continue;
		nsampled++;
		c[i].want = PGRES_POLLING_READING;
		if (PQsendQuery(c[i].pg, "SELECT 1")) {
			c[i].state = QUERYING;
		} else {
			report_failure(c[i].pg);
			c[i].state = FAILED;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	run_until_done(c, n, QUERYING, pfds, map, &t0, LOGIN_DEADLINE_MS);
	for (int i = 0; i < n; i++)
		nqueried += c[i].state == QUERIED;
	printf("queries ok=%d of %d\n", nqueried, nsampled);
	fflush(stdout);

	wait_for_line();
	for (int i = 0; i < n; i++)
		PQfinish(c[i].pg);
	free(c);
	free(pfds);
	free(map);
	/* Flushed here: a sanitizer build's exit-time checks may end the process without stdio. */
	printf("closed\n");
	fflush(stdout);
	return 0;
}
