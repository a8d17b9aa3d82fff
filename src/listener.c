/*
 * Listening sockets. Every address in listen_addr gets the read-write and the
 * read-only port; unix sockets follow Postgres' naming (.s.PGSQL.<port>) so
 * psql -h <dir> -p <port> finds them.
 *
 * A port or a socket held by another process stops the start: two pgwing
 * processes silently sharing a port would split its clients between two
 * configurations (another auth_type, other users). Sharing the TCP ports, one
 * process per core, is asked for with so_reuseport; a unix socket is never
 * shared, and its lock file says whose it is.
 */
#include "pgwing/listener.h"

#include "pgwing/client.h"
#include "pgwing/log.h"

#include <event2/event.h>
#include <event2/listener.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Running out of fds ends after this long without a failed accept or server
 * connect: while descriptors are scarce, they fail and succeed in turn, and
 * that is one episode to the log, not two lines per retry.
 */
#define ACCEPT_QUIET_MS     5000
/*
 * After a server connect failed for want of a descriptor, accepting waits this
 * long, longer than the pool takes to retry its waiters (POOL_RETRY_MS), so a
 * descriptor that frees up goes to them.
 */
#define FD_SHORTAGE_HOLD_MS 500
/*
 * Tries at taking a socket's lock file: each finds it taken by a dead process
 * and removes it, so more than a couple means others are racing for it too.
 */
#define LOCK_ATTEMPTS       10

struct listener {
	struct evconnlistener *lev;
	enum target target;
	char *unix_path; /* removed on stop */
	char *lock_path; /* unix_path's lock file, ours while we listen; removed after it */
	struct listener *next;
};

static struct listener *listeners;
static int backlog;         /* listen_backlog at start: listen() takes it once */
static bool is_port_shared; /* so_reuseport at start */
static struct event *retry_timer;
/*
 * Out of descriptors: accept() failed, or a server connect did, and not long
 * ago (ACCEPT_QUIET_MS). One warning per episode, not one per retry.
 */
static bool is_starved;
static int64_t starved_since_ms, last_accept_error_ms;
/* now_ms() when a server connect last failed for want of a descriptor (0: never). */
static int64_t fd_shortage_ms;

static void arm_retry(void)
{
	listener_pause();
	timer_add_ms(retry_timer, LISTENER_RETRY_MS);
}

static void note_starved(const char *what, int err)
{
	if (is_starved)
		return;
	is_starved = true;
	starved_since_ms = now_ms();
	log_warn("%s failed: %s; accepting clients one at a time, and none while waiting clients "
		 "cannot get a server (retrying every %d ms)",
		 what, evutil_socket_error_to_string(err), LISTENER_RETRY_MS);
}

static void accept_cb(struct evconnlistener *lev UNUSED, evutil_socket_t fd, struct sockaddr *addr,
		      int addrlen, void *arg)
{
	struct listener *l = arg;
	int64_t last_failure_ms =
		last_accept_error_ms > fd_shortage_ms ? last_accept_error_ms : fd_shortage_ms;

	if (is_starved && now_ms() - last_failure_ms >= ACCEPT_QUIET_MS) {
		is_starved = false;
		log_info("accepting new connections again, %" PRId64 " s after running out of fds",
			 (now_ms() - starved_since_ms) / 1000);
	}
	/*
	 * While descriptors are scarce, a burst of accepts would take every one
	 * that freed up and leave none for those clients' servers: one at a
	 * time, so each reaches its server connect before the next comes in.
	 */
	if (is_starved)
		arm_retry();
	client_accept(fd, l->target, addr, addrlen);
}

/* While waiting clients' connects fail for want of descriptors, a freed one goes to them. */
static void retry_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	if (fd_shortage_ms != 0 && now_ms() - fd_shortage_ms < FD_SHORTAGE_HOLD_MS)
		arm_retry();
	else
		listener_resume();
}

/*
 * Out of fds (or another accept error): the pending connection keeps the
 * socket readable, so pause every listener instead of spinning on it, and
 * try again later. The clients wait in the backlog meanwhile.
 */
static void accept_error_cb(struct evconnlistener *lev UNUSED, void *arg UNUSED)
{
	if (listener_note_accept_error())
		arm_retry();
}

bool listener_note_accept_error(void)
{
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EINTR || err == EAGAIN || err == ECONNABORTED)
		return false;
	last_accept_error_ms = now_ms();
	note_starved("accept", err);
	return true;
}

/*
 * Accepting a client whose server cannot be opened only takes a descriptor
 * that a client already waiting for its server needs: without this pause,
 * every freed descriptor goes to the next accept and nobody is ever served.
 */
void listener_note_fd_shortage(int err)
{
	fd_shortage_ms = now_ms();
	note_starved("connecting to a server", err);
	if (retry_timer != NULL && !evtimer_pending(retry_timer, NULL))
		arm_retry();
}

/* l listens with its lev from now on: it joins the list, and the log says so. */
static void link_listener(struct listener *l, const char *desc, const char *unix_path,
			  const char *lock_path)
{
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	l->unix_path = unix_path != NULL ? xstrdup(unix_path) : NULL;
	l->lock_path = lock_path != NULL ? xstrdup(lock_path) : NULL;
	l->next = listeners;
	listeners = l;
	log_info("listening on %s (%s)", desc, target_name(l->target));
}

/* Returns 0, or the errno of the failure (EADDRINUSE: another process holds the address). */
static int add_listener(struct event_base *base, const struct sockaddr *sa, socklen_t salen,
			enum target target, const char *desc, const char *unix_path,
			const char *lock_path)
{
	/* SO_REUSEADDR only skips TIME_WAIT: Linux still refuses a port someone listens on. */
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE;
	struct listener *l = xcalloc(1, sizeof(*l));
	int err;

	if (unix_path == NULL && is_port_shared)
		flags |= LEV_OPT_REUSEABLE_PORT;
	if (sa->sa_family == AF_INET6)
		flags |= LEV_OPT_BIND_IPV6ONLY;
	l->target = target;
	l->lev = evconnlistener_new_bind(base, accept_cb, l, flags, backlog, sa, (int)salen);
	if (l->lev == NULL) {
		err = errno;
		if (err == EADDRINUSE && unix_path == NULL)
			log_error("could not listen on %s: %s: another process holds the port (is "
				  "another pgwing running? pgwing processes share a port only when "
				  "each sets so_reuseport = on)",
				  desc, strerror(err));
		else
			log_error("could not listen on %s: %s", desc, strerror(err));
		free(l);
		return err;
	}
	link_listener(l, desc, unix_path, lock_path);
	return 0;
}

/* "127.0.0.1:5432", "[::1]:5432": how the log names a TCP address. */
static void describe_address(const struct sockaddr *sa, socklen_t salen, char *desc, size_t size)
{
	char name[64] = "", port[16] = "";

	getnameinfo(sa, salen, name, sizeof(name), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(desc, size, "%s%s%s:%s", sa->sa_family == AF_INET6 ? "[" : "", name,
		 sa->sa_family == AF_INET6 ? "]" : "", port);
}

static int listen_tcp(struct event_base *base, const char *host, int port, enum target target)
{
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
	struct addrinfo *res, *ai;
	char service[16];
	int rc, nok = 0;
	bool is_in_use = false;

	snprintf(service, sizeof(service), "%d", port);
	/* Runs before the loop starts (or on restart), so a blocking lookup is fine here. */
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, service, &hints, &res);
	if (rc != 0) {
		log_error("could not resolve listen address \"%s\": %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		char desc[128];

		describe_address(ai->ai_addr, ai->ai_addrlen, desc, sizeof(desc));
		rc = add_listener(base, ai->ai_addr, ai->ai_addrlen, target, desc, NULL, NULL);
		if (rc == 0)
			nok++;
		is_in_use |= rc == EADDRINUSE;
	}
	freeaddrinfo(res);
	/*
	 * An address this host lacks (no IPv6) may fail alone; one that another
	 * process holds may not, or clients of that name would reach it.
	 */
	return nok > 0 && !is_in_use ? 0 : -1;
}

/* The pid in a lock file; 0 if it holds none (being written, or not ours), -1 if it is gone. */
static long read_lock_pid(const char *lock_path)
{
	char buf[32];
	int fd = open(lock_path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	long pid;

	if (fd < 0)
		return errno == ENOENT ? -1 : 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* Postgres writes a negative pid for a standalone backend. */
	pid = labs(strtol(buf, NULL, 10));
	return pid > 0 && pid <= INT32_MAX ? pid : 0;
}

/* Write our pid into the lock file: at start, and again after daemonizing. */
static int write_lock_pid(const char *lock_path, int fd)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());

	if (write(fd, buf, (size_t)len) != len) {
		log_error("could not write lock file %s: %s", lock_path, strerror(errno));
		close(fd);
		unlink(lock_path);
		return -1;
	}
	close(fd);
	return 0;
}

/*
 * Take the socket's lock file, <socket>.lock holding the pid, as Postgres does
 * (and with its name, so a Postgres on the same directory and port is seen
 * too): only its holder may unlink and bind the socket, so a second start
 * never deletes a live one. A lock whose process is gone is replaced.
 */
static int lock_unix_socket(const char *lock_path, const char *sock_path)
{
	for (int attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
		int fd = open(lock_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		long pid;

		if (fd >= 0)
			return write_lock_pid(lock_path, fd);
		if (errno != EEXIST) {
			log_error("could not create lock file %s: %s", lock_path, strerror(errno));
			return -1;
		}
		pid = read_lock_pid(lock_path);
		if (pid < 0)
			continue; /* removed meanwhile */
		if (pid == 0) {
			log_error(
				"lock file %s holds no process id: another pgwing may be starting "
				"on %s; remove the file if none is",
				lock_path, sock_path);
			return -1;
		}
		/* Our pid or our parent's in a stale file: a pid reused after a reboot. */
		if (pid != getpid() && pid != getppid() &&
		    (kill((pid_t)pid, 0) == 0 || errno == EPERM)) {
			log_error("unix socket %s is in use by process %ld (lock file %s): is "
				  "another pgwing running?",
				  sock_path, pid, lock_path);
			return -1;
		}
		log_info("removing stale lock file %s (process %ld is gone)", lock_path, pid);
		if (unlink(lock_path) < 0 && errno != ENOENT) {
			log_error("could not remove stale lock file %s: %s", lock_path,
				  strerror(errno));
			return -1;
		}
	}
	log_error("could not take lock file %s: other processes keep taking it", lock_path);
	return -1;
}

static int listen_unix(struct event_base *base, const char *dir, int port, enum target target)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char lock_path[sizeof(sun.sun_path) + sizeof(".lock")];

	if ((size_t)snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/.s.PGSQL.%d", dir, port) >=
	    sizeof(sun.sun_path)) {
		log_error("unix socket path too long in %s", dir);
		return -1;
	}
	snprintf(lock_path, sizeof(lock_path), "%s.lock", sun.sun_path);
	if (lock_unix_socket(lock_path, sun.sun_path) < 0)
		return -1;
	/* Ours now: a socket file left by a dead process would make bind fail. */
	unlink(sun.sun_path);
	if (add_listener(base, (struct sockaddr *)&sun, sizeof(sun), target, sun.sun_path,
			 sun.sun_path, lock_path) != 0) {
		unlink(lock_path);
		return -1;
	}
	chmod(sun.sun_path, 0777);
	return 0;
}

void listener_relock(void)
{
	for (struct listener *l = listeners; l != NULL; l = l->next) {
		int fd;

		if (l->lock_path == NULL)
			continue;
		fd = open(l->lock_path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		if (fd < 0)
			log_error("could not rewrite lock file %s: %s", l->lock_path,
				  strerror(errno));
		else
			write_lock_pid(l->lock_path, fd);
	}
}

/* What every listener of the process shares, taken once at start. */
static void setup_listeners(struct event_base *base, const struct config *cfg)
{
	retry_timer = CHECK_ALLOC(evtimer_new(base, retry_cb, NULL));
	backlog = cfg->listen_backlog;
	is_port_shared = cfg->so_reuseport;
}

int listener_start(struct event_base *base, const struct config *cfg)
{
	char *addrs = xstrdup(cfg->listen_addr);
	char *save = NULL;
	int rc = 0;

	setup_listeners(base, cfg);
	for (char *tok = strtok_r(addrs, ",", &save); tok != NULL && rc == 0;
	     tok = strtok_r(NULL, ",", &save)) {
		while (*tok == ' ' || *tok == '\t')
			tok++;
		for (char *end = tok + strlen(tok);
		     end > tok && (end[-1] == ' ' || end[-1] == '\t');)
			*--end = '\0';
		if (*tok == '\0')
			continue;
		rc = listen_tcp(base, tok, cfg->rw_port, TARGET_RW);
		if (rc == 0)
			rc = listen_tcp(base, tok, cfg->ro_port, TARGET_RO);
	}
	free(addrs);
	if (rc == 0 && cfg->unix_socket_dir[0] != '\0') {
		rc = listen_unix(base, cfg->unix_socket_dir, cfg->rw_port, TARGET_RW);
		if (rc == 0)
			rc = listen_unix(base, cfg->unix_socket_dir, cfg->ro_port, TARGET_RO);
	}
	return rc;
}

void listener_pause(void)
{
	for (struct listener *l = listeners; l != NULL; l = l->next)
		evconnlistener_disable(l->lev);
}

void listener_resume(void)
{
	for (struct listener *l = listeners; l != NULL; l = l->next)
		evconnlistener_enable(l->lev);
}

int listener_export(struct listener_socket *out, int max)
{
	int n = 0;

	for (struct listener *l = listeners; l != NULL; l = l->next) {
		if (n == max)
			return -1;
		out[n].fd = evconnlistener_get_fd(l->lev);
		out[n].target = l->target;
		snprintf(out[n].unix_path, sizeof(out[n].unix_path), "%s",
			 l->unix_path != NULL ? l->unix_path : "");
		n++;
	}
	return n;
}

int listener_adopt(struct event_base *base, const struct config *cfg,
		   const struct listener_socket *socks, int n)
{
	setup_listeners(base, cfg);
	for (int i = 0; i < n; i++) {
		struct listener *l = xcalloc(1, sizeof(*l));
		char desc[128], lock_path[sizeof(socks[i].unix_path) + sizeof(".lock")];
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		bool is_unix = socks[i].unix_path[0] != '\0';

		l->target = socks[i].target;
		evutil_make_socket_nonblocking(socks[i].fd);
		/* Backlog 0: it listens already, with the backlog its first owner gave it. */
		l->lev = evconnlistener_new(base, accept_cb, l,
					    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0,
					    socks[i].fd);
		if (l->lev == NULL) {
			log_error("could not listen on a handed over socket: %s", strerror(errno));
			free(l);
			for (int j = i; j < n; j++)
				close(socks[j].fd);
			return -1;
		}
		if (is_unix)
			snprintf(desc, sizeof(desc), "%s", socks[i].unix_path);
		else if (getsockname(socks[i].fd, (struct sockaddr *)&ss, &sslen) == 0)
			describe_address((struct sockaddr *)&ss, sslen, desc, sizeof(desc));
		else
			snprintf(desc, sizeof(desc), "a handed over socket");
		snprintf(lock_path, sizeof(lock_path), "%s.lock", socks[i].unix_path);
		link_listener(l, desc, is_unix ? socks[i].unix_path : NULL,
			      is_unix ? lock_path : NULL);
	}
	return 0;
}

/* Stop listening; the socket and lock files go too unless another process listens on them. */
static void close_listeners(bool is_removing_files)
{
	while (listeners != NULL) {
		struct listener *l = listeners;

		listeners = l->next;
		evconnlistener_free(l->lev);
		if (l->unix_path != NULL) {
			if (is_removing_files)
				unlink(l->unix_path);
			free(l->unix_path);
		}
		/* After the socket: while the lock stands, nobody else touches the socket. */
		if (l->lock_path != NULL) {
			if (is_removing_files)
				unlink(l->lock_path);
			free(l->lock_path);
		}
		free(l);
	}
	if (retry_timer != NULL) {
		event_free(retry_timer);
		retry_timer = NULL;
	}
}

void listener_stop(void)
{
	close_listeners(true);
}

void listener_release(void)
{
	close_listeners(false);
}
