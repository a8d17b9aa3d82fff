/*
 * holdconns: open N real, authenticated Postgres connections and hold them idle.
 *
 *   holdconns CONNINFO N [PARALLEL]
 *
 * Connects with libpq's non-blocking API (PQconnectStart/PQconnectPoll), at most
 * PARALLEL (default 64) logins in flight, so a proxy sees N full logins (SCRAM
 * or whatever the conninfo and the server ask for). Prints "ready OK FAILED"
 * on stdout once every attempt has finished, then holds the connections open
 * until the process gets SIGTERM or SIGINT, and exits 0.
 * The first few failures are printed on stderr.
 *
 * Part of the pgwing benchmark harness (contrib/bench/run): the RSS of the
 * proxy is read from /proc/PID/status before and after.
 */
#include <libpq-fe.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

struct slot {
	PGconn *conn;
	PostgresPollingStatusType want;
};

int main(int argc, char **argv)
{
	const char *conninfo;
	int n, parallel, started = 0, done = 0, ok = 0, failed = 0;
	PGconn **held;
	struct slot *slots;
	struct pollfd *pfds;
	int *map;

	if (argc < 3) {
		fprintf(stderr, "usage: %s CONNINFO N [PARALLEL]\n", argv[0]);
		return 2;
	}
	conninfo = argv[1];
	n = atoi(argv[2]);
	parallel = argc > 3 ? atoi(argv[3]) : 64;
	if (n < 0 || parallel < 1)
		return 2;
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);

	held = calloc((size_t)n + 1, sizeof(*held));
	slots = calloc((size_t)parallel, sizeof(*slots));
	pfds = calloc((size_t)parallel, sizeof(*pfds));
	map = calloc((size_t)parallel, sizeof(*map));
	if (held == NULL || slots == NULL || pfds == NULL || map == NULL)
		return 1;

	while (done < n && !stop) {
		int i, np = 0;

		/* Fill free slots with new attempts. */
		for (i = 0; i < parallel && started < n; i++) {
			if (slots[i].conn != NULL)
				continue;
			slots[i].conn = PQconnectStart(conninfo);
			slots[i].want = PGRES_POLLING_WRITING;
			started++;
			if (slots[i].conn == NULL || PQstatus(slots[i].conn) == CONNECTION_BAD) {
				if (failed < 5)
					fprintf(stderr, "holdconns: %s",
						slots[i].conn ? PQerrorMessage(slots[i].conn)
							      : "out of memory\n");
				PQfinish(slots[i].conn);
				slots[i].conn = NULL;
				failed++;
				done++;
			}
		}
		for (i = 0; i < parallel; i++) {
			if (slots[i].conn == NULL)
				continue;
			pfds[np].fd = PQsocket(slots[i].conn);
			pfds[np].events = slots[i].want == PGRES_POLLING_READING ? POLLIN : POLLOUT;
			pfds[np].revents = 0;
			map[np++] = i;
		}
		if (np == 0)
			continue;
		if (poll(pfds, (nfds_t)np, 1000) < 0 && errno != EINTR)
			return 1;
		for (i = 0; i < np; i++) {
			struct slot *s = &slots[map[i]];

			if (pfds[i].revents == 0)
				continue;
			s->want = PQconnectPoll(s->conn);
			if (s->want == PGRES_POLLING_OK) {
				held[ok++] = s->conn;
				s->conn = NULL;
				done++;
			} else if (s->want == PGRES_POLLING_FAILED) {
				if (failed < 5)
					fprintf(stderr, "holdconns: %s", PQerrorMessage(s->conn));
				PQfinish(s->conn);
				s->conn = NULL;
				failed++;
				done++;
			}
		}
	}
	printf("ready %d %d\n", ok, failed);
	fflush(stdout);

	/* Hold until told to let go. */
	while (!stop)
		poll(NULL, 0, 200);
	for (int i = 0; i < ok; i++)
		PQfinish(held[i]);
	return 0;
}
