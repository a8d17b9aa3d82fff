/*
 * The takeover (takeover.h). The control socket is a unix SOCK_SEQPACKET
 * socket: each message arrives whole or not at all, with the descriptors
 * it carries, so neither side reassembles anything. The messages:
 *
 *   new -> old  'H' version                        hello: I take over
 *   old -> new  'L' n (target, unix path)*n        the listening sockets (fds),
 *               has_metrics                        then the metrics one, if any
 *            or 'E' text                           refused, and why
 *   new -> old  'A'                                listening: hand over
 *   old -> new  'C' client                         one client (its socket's fd)
 *
 * The old process closes the connection when it exits. Integers are
 * big-endian; every length is checked against what is left, and anything
 * malformed ends the connection (never the process).
 *
 * PgBouncer's online restart (-R, src/takeover.c there) taught the shape: the
 * sockets pass over a unix socket with SCM_RIGHTS. It suspended every
 * connection at once and passed the servers with their clients, and could not
 * carry TLS; pgwing passes only clients, whose servers it reopens and whose
 * sessions it replays, so each moves at its own idle point.
 */
#include "pgwing/takeover.h"

#include "pgwing/client.h"
#include "pgwing/config.h"
#include "pgwing/link.h"
#include "pgwing/listener.h"
#include "pgwing/log.h"
#include "pgwing/metrics.h"
#include "pgwing/proto.h"
#include "pgwing/runtime.h"
#include "pgwing/session.h"

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define TAKEOVER_VERSION 1
/*
 * The largest message: a seqpacket message must fit in the socket's send
 * buffer (net.core.wmem_default, 208 kB on Linux). A client whose session
 * state is larger stays and drains.
 */
#define MESSAGE_MAX      (192 * 1024)
/* Listening sockets in one message: SCM_RIGHTS carries at most 253 fds. */
#define LISTENERS_MAX    64
/* Startup parameters and reported parameters of one client. */
#define PARAMS_MAX       256
/*
 * The new process waits this long for the old one's sockets: the old one
 * answers from its loop at once, so this only bounds a hung process.
 */
#define HELLO_TIMEOUT_S  10
/* How often the old process looks for clients that became idle without a release. */
#define SWEEP_MS         100

enum phase {
	PHASE_NONE,    /* old: no takeover under way */
	PHASE_OFFERED, /* old: sockets sent, waiting for 'A' */
	PHASE_HANDING, /* old: handing clients over; new: taking them */
};

/* The process state, given by the runtime at start (takeover_init): read, never written. */
static const struct runtime *rt;

static int listen_fd = -1; /* the control socket we listen on */
static struct event *listen_ev;
static int peer_fd = -1; /* the one takeover connection */
static struct event *peer_ev;
static struct event *sweep_timer;
static enum phase phase;
static bool is_handed_over;
static bool is_adopted; /* new: listening on the old process's sockets, not yet said so */
static int nclients_moved;
static char socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

void takeover_init(const struct runtime *runtime)
{
	rt = runtime;
}

bool takeover_is_handed_over(void)
{
	return is_handed_over;
}

/* takeover_socket, or next to the unix sockets; "" when neither is set. */
static bool resolve_path(void)
{
	const struct config *cfg = rt->cfg;
	int len;

	if (cfg->takeover_socket[0] != '\0')
		len = snprintf(socket_path, sizeof(socket_path), "%s", cfg->takeover_socket);
	else if (cfg->unix_socket_dir[0] != '\0')
		len = snprintf(socket_path, sizeof(socket_path), "%s/.s.PGSQL.%d.takeover",
			       cfg->unix_socket_dir, cfg->rw_port);
	else
		len = snprintf(socket_path, sizeof(socket_path), "%s", "");
	if ((size_t)len >= sizeof(socket_path)) {
		log_error("takeover_socket: path too long (at most %zu bytes)",
			  sizeof(socket_path) - 1);
		return false;
	}
	return true;
}

/* The peer runs as our user: anyone else could take our clients, or feed us theirs. */
static bool is_own_user(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_error("takeover: could not read the peer's credentials: %s", strerror(errno));
		return false;
	}
	if (cred.uid != geteuid()) {
		log_error("takeover: refused a process of uid %u (pgwing runs as uid %u)",
			  (unsigned)cred.uid, (unsigned)geteuid());
		return false;
	}
	return true;
}

/* Send one message with nfds descriptors; returns 0, or the errno. */
static int send_message(int fd, struct evbuffer *msg, const int *fds, int nfds)
{
	size_t len = evbuffer_get_length(msg);
	uint8_t *data = evbuffer_pullup(msg, -1);
	struct iovec iov = {.iov_base = data, .iov_len = len};
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (LISTENERS_MAX + 1))];
	} control;
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	ssize_t n;
	int err = 0;

	if (nfds > 0) {
		struct cmsghdr *cm;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0)
		err = errno;
	else if ((size_t)n != len)
		err = EMSGSIZE;
	/* A client's message holds its credentials. */
	OPENSSL_cleanse(data, len);
	evbuffer_drain(msg, len);
	return err;
}

/*
 * Receive one message into buf (at most MESSAGE_MAX bytes) and the fds it
 * carries (at most max_fds, the count in *nfds). -1 on EOF, an error, or a
 * message cut short (then no fd is left open); 0 for EAGAIN.
 */
static ssize_t recv_message(int fd, uint8_t *buf, int *fds, int max_fds, int *nfds)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * (LISTENERS_MAX + 1))];
	} control;
	struct iovec iov = {.iov_base = buf, .iov_len = MESSAGE_MAX};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = control.buf,
			    .msg_controllen = sizeof(control.buf)};
	ssize_t n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);

	*nfds = 0;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return 0;
	for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n >= 0 && cm != NULL;
	     cm = CMSG_NXTHDR(&mh, cm)) {
		int count;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		count = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < count; i++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*nfds < max_fds)
				fds[(*nfds)++] = got;
			else
				close(got);
		}
	}
	if (n > 0 && (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) == 0)
		return n;
	if (n > 0)
		log_error("takeover: a message was cut short (over %d bytes, or too many fds)",
			  MESSAGE_MAX);
	else if (n < 0)
		log_error("takeover: control socket: %s", strerror(errno));
	for (int i = 0; i < *nfds; i++)
		close(fds[i]);
	*nfds = 0;
	return -1;
}

static uint8_t message_buf[MESSAGE_MAX];

/* ---- the old process ---- */

static void put_params(struct evbuffer *out, const struct startup_params *p)
{
	proto_put_int16(out, (uint16_t)p->count);
	for (size_t i = 0; i < p->count; i++) {
		proto_put_cstring(out, p->items[i].name);
		proto_put_cstring(out, p->items[i].value);
	}
}

static void put_byte(struct evbuffer *out, uint8_t b)
{
	evbuffer_add(out, &b, 1);
}

static void put_credentials(struct evbuffer *out, const struct server_credentials *cred)
{
	proto_put_cstring(out, cred->user != NULL ? cred->user : "");
	put_byte(out, cred->password != NULL);
	if (cred->password != NULL)
		proto_put_cstring(out, cred->password);
	put_byte(out, cred->has_scram_keys);
	if (!cred->has_scram_keys)
		return;
	evbuffer_add(out, cred->client_key, SCRAM_KEY_LEN);
	evbuffer_add(out, cred->server_key, SCRAM_KEY_LEN);
	put_byte(out, (uint8_t)cred->scram_salt_len);
	evbuffer_add(out, cred->scram_salt, cred->scram_salt_len);
	proto_put_int32(out, (uint32_t)cred->scram_iterations);
}

/*
 * A client that can go: logged in and between transactions without a server,
 * nothing half read or owed to a dead server, on a plaintext socket (TLS
 * state can't be handed over), its session movable (its form written to
 * session, which the caller frees).
 */
static bool can_move(struct client *cl, struct evbuffer *session)
{
	if (cl->state != CL_IDLE || cl->server != NULL || cl->conn.plain_fd < 0 ||
	    cl->cancel_pid == 0 || cl->msg_remaining > 0 || cl->xact.is_skipping_to_sync ||
	    cl->is_leaving || evbuffer_get_length(conn_input(&cl->conn)) > 0)
		return false;
	return cl->session == NULL || session_state_serialize(cl->session, session);
}

static void stop_handing_over(const char *why)
{
	log_warn("takeover: %s; the clients left drain here", why);
	link_set_handover(NULL);
	phase = PHASE_NONE;
	if (sweep_timer != NULL)
		event_del(sweep_timer);
	runtime_drain();
}

/*
 * The link's question at each idle point, and the sweep's: hand cl over now.
 * True when it went (closed here without a word; the new process answers it
 * from now on).
 */
static bool take_client(struct client *cl)
{
	struct evbuffer *msg, *session = CHECK_ALLOC(evbuffer_new());
	struct evbuffer *owed = conn_output(&cl->conn);
	bool has_session = cl->session != NULL;
	int err;

	if (phase != PHASE_HANDING || !can_move(cl, session)) {
		evbuffer_free(session);
		return false;
	}
	msg = CHECK_ALLOC(evbuffer_new());
	put_byte(msg, 'C');
	put_byte(msg, (uint8_t)cl->target);
	proto_put_int32(msg, cl->cancel_pid);
	proto_put_int32(msg, cl->cancel_key);
	put_params(msg, &cl->params);
	put_byte(msg, cl->reported != NULL);
	if (cl->reported != NULL)
		put_params(msg, &cl->reported->params);
	put_credentials(msg, &cl->cred);
	put_byte(msg, has_session);
	proto_put_int32(msg, (uint32_t)evbuffer_get_length(session));
	evbuffer_add_buffer(msg, session);
	evbuffer_free(session);
	/* What it was not sent yet (the ReadyForQuery of its last request, say) goes along. */
	proto_put_int32(msg, (uint32_t)evbuffer_get_length(owed));
	evbuffer_add_buffer_reference(msg, owed);
	if (evbuffer_get_length(msg) > MESSAGE_MAX) {
		log_debug("client %" PRIu64 ": too much session state to hand over; it stays",
			  cl->id);
		OPENSSL_cleanse(evbuffer_pullup(msg, -1), evbuffer_get_length(msg));
		evbuffer_free(msg);
		return false;
	}
	err = send_message(peer_fd, msg, &cl->conn.plain_fd, 1);
	evbuffer_free(msg);
	if (err == EAGAIN || err == EWOULDBLOCK)
		return false; /* the new process is busy reading: the next sweep tries again */
	if (err != 0) {
		stop_handing_over(strerror(err));
		return false;
	}
	nclients_moved++;
	log_debug("client %" PRIu64 " handed over", cl->id);
	evbuffer_drain(owed, evbuffer_get_length(owed));
	client_close(cl);
	return true;
}

/*
 * Clients idle since before the takeover, with a server or without; once no
 * login is under way, the drain of what stays (a drain refuses logins that
 * have not ended, and these will move once they have).
 */
static void sweep_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	struct client *cl, *next;
	bool is_login_under_way = false;

	for (cl = TAILQ_FIRST(client_all()); cl != NULL && phase == PHASE_HANDING; cl = next) {
		next = TAILQ_NEXT(cl, all_link);
		is_login_under_way |= cl->state == CL_STARTUP || cl->state == CL_AUTH;
		take_client(cl);
	}
	if (phase == PHASE_HANDING)
		link_release_idle(NULL);
	if (!is_login_under_way)
		runtime_drain();
}

/*
 * The new process listens: we stop accepting (our copies of the sockets
 * close; the files and the control socket's path are its now) and start
 * handing over and draining.
 */
static void begin_handing_over(void)
{
	log_info("takeover: the new process listens; handing idle clients over, draining the "
		 "rest");
	listener_release();
	metrics_release_socket();
	event_free(listen_ev);
	listen_ev = NULL;
	close(listen_fd);
	listen_fd = -1;
	is_handed_over = true;
	phase = PHASE_HANDING;
	link_set_handover(take_client);
	sweep_timer = CHECK_ALLOC(event_new(rt->base, -1, EV_PERSIST, sweep_cb, NULL));
	timer_add_ms(sweep_timer, SWEEP_MS);
	sweep_cb(-1, 0, NULL);
}

static void close_peer(void)
{
	if (peer_ev != NULL)
		event_free(peer_ev);
	peer_ev = NULL;
	if (peer_fd >= 0)
		close(peer_fd);
	peer_fd = -1;
}

static void refuse(int fd, const char *why)
{
	struct evbuffer *msg = CHECK_ALLOC(evbuffer_new());

	log_error("takeover refused: %s", why);
	put_byte(msg, 'E');
	proto_put_cstring(msg, why);
	send_message(fd, msg, NULL, 0);
	evbuffer_free(msg);
}

/* 'H': send the listening sockets (ours still: we accept on until 'A'). */
static void offer_sockets(void)
{
	struct listener_socket socks[LISTENERS_MAX];
	int fds[LISTENERS_MAX + 1];
	int n = listener_export(socks, LISTENERS_MAX);
	int metrics_fd = metrics_socket();
	struct evbuffer *msg;
	int err;

	if (n < 0) {
		refuse(peer_fd, "too many listening sockets");
		close_peer();
		return;
	}
	msg = CHECK_ALLOC(evbuffer_new());
	put_byte(msg, 'L');
	proto_put_int16(msg, (uint16_t)n);
	for (int i = 0; i < n; i++) {
		put_byte(msg, (uint8_t)socks[i].target);
		proto_put_cstring(msg, socks[i].unix_path);
		fds[i] = socks[i].fd;
	}
	put_byte(msg, metrics_fd >= 0);
	if (metrics_fd >= 0)
		fds[n] = metrics_fd;
	err = send_message(peer_fd, msg, fds, n + (metrics_fd >= 0));
	evbuffer_free(msg);
	if (err != 0) {
		log_error("takeover: could not send the listening sockets: %s", strerror(err));
		close_peer();
		return;
	}
	log_info("takeover: a new process asks for the sockets; sent %d", n + (metrics_fd >= 0));
	phase = PHASE_OFFERED;
}

/* The new process's messages: 'H', then 'A'; after that only its closing. */
static void old_peer_cb(evutil_socket_t fd, short what UNUSED, void *arg UNUSED)
{
	int fds[1], nfds;
	ssize_t n = recv_message(fd, message_buf, fds, 0, &nfds);
	struct proto_reader r;
	uint8_t type;

	if (n == 0)
		return;
	proto_reader_init(&r, message_buf, n > 0 ? (size_t)n : 0);
	type = proto_read_byte(&r);
	if (n > 0 && type == 'H' && phase == PHASE_NONE &&
	    proto_read_int32(&r) == TAKEOVER_VERSION && proto_reader_remaining(&r) == 0) {
		offer_sockets();
		return;
	}
	if (n > 0 && type == 'A' && phase == PHASE_OFFERED && proto_reader_remaining(&r) == 0) {
		begin_handing_over();
		return;
	}
	if (phase == PHASE_HANDING)
		stop_handing_over("the new process closed the control connection");
	else if (n > 0)
		refuse(fd, "unexpected message on the control socket (another pgwing version?)");
	else if (phase == PHASE_OFFERED)
		log_error("takeover: the new process went away before it listened; still running "
			  "as before");
	phase = PHASE_NONE;
	close_peer();
}

static void accept_cb(evutil_socket_t fd, short what UNUSED, void *arg UNUSED)
{
	int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (conn < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_error("takeover: accept: %s", strerror(errno));
		return;
	}
	if (!is_own_user(conn)) {
		close(conn);
		return;
	}
	if (peer_fd >= 0 || phase != PHASE_NONE || is_handed_over) {
		refuse(conn, "a takeover is under way already");
		close(conn);
		return;
	}
	peer_fd = conn;
	peer_ev = CHECK_ALLOC(event_new(rt->base, conn, EV_READ | EV_PERSIST, old_peer_cb, NULL));
	event_add(peer_ev, NULL);
}

/* Listen on the control socket: only our user may connect (mode 0600, and SO_PEERCRED). */
static int listen_control(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (socket_path[0] == '\0')
		return 0;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		log_error("takeover: socket: %s", strerror(errno));
		return -1;
	}
	/* A file left by a process gone, or by the one we took over from: ours now. */
	unlink(sun.sun_path);
	if (fchmod(fd, 0600) < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    chmod(sun.sun_path, 0600) < 0 || listen(fd, 1) < 0) {
		log_error("takeover: could not listen on %s: %s", socket_path, strerror(errno));
		close(fd);
		return -1;
	}
	listen_fd = fd;
	listen_ev = CHECK_ALLOC(event_new(rt->base, fd, EV_READ | EV_PERSIST, accept_cb, NULL));
	event_add(listen_ev, NULL);
	log_info("takeover: listening on %s", socket_path);
	return 0;
}

/* ---- the new process ---- */

/* n name/value pairs into p; false on a bad count or string. */
static bool read_params(struct proto_reader *r, struct startup_params *p)
{
	uint16_t n = proto_read_int16(r);

	if (n > PARAMS_MAX)
		return false;
	for (uint16_t i = 0; i < n && !r->has_failed; i++) {
		const char *name = proto_read_cstring(r);
		const char *value = proto_read_cstring(r);

		if (value != NULL)
			startup_params_set(p, name, value);
	}
	return !r->has_failed;
}

static bool read_credentials(struct proto_reader *r, struct server_credentials *cred)
{
	const char *user = proto_read_cstring(r);
	const uint8_t *p;

	if (user == NULL)
		return false;
	cred->user = xstrdup(user);
	if (proto_read_byte(r) != 0) {
		const char *password = proto_read_cstring(r);

		if (password == NULL)
			return false;
		cred->password = xstrdup(password);
	}
	cred->has_scram_keys = proto_read_byte(r) != 0;
	if (!cred->has_scram_keys)
		return !r->has_failed;
	p = proto_read_bytes(r, 2 * SCRAM_KEY_LEN);
	if (p == NULL)
		return false;
	memcpy(cred->client_key, p, SCRAM_KEY_LEN);
	memcpy(cred->server_key, p + SCRAM_KEY_LEN, SCRAM_KEY_LEN);
	cred->scram_salt_len = proto_read_byte(r);
	p = proto_read_bytes(r, cred->scram_salt_len);
	if (p == NULL || cred->scram_salt_len > SCRAM_SALT_MAX)
		return false;
	memcpy(cred->scram_salt, p, cred->scram_salt_len);
	cred->scram_iterations = (int)proto_read_int32(r);
	return !r->has_failed && cred->scram_iterations > 0;
}

static void free_handover(struct client_handover *h)
{
	startup_params_free(&h->params);
	server_credentials_free(&h->cred);
	param_set_unref(h->reported);
	session_state_free(h->session);
}

/* A 'C' message's body (after its type) into h, owed pointing into it; false if malformed. */
static bool read_client(struct proto_reader *r, struct client_handover *h, const uint8_t **owed,
			uint32_t *owed_len)
{
	uint8_t target = proto_read_byte(r);
	uint32_t session_len;
	const uint8_t *session;

	if (target != TARGET_RW && target != TARGET_RO)
		return false;
	h->target = (enum target)target;
	h->cancel_pid = proto_read_int32(r);
	h->cancel_key = proto_read_int32(r);
	if (!read_params(r, &h->params))
		return false;
	h->params.user = startup_params_get(&h->params, "user");
	h->params.database = startup_params_get(&h->params, "database");
	if (h->params.database == NULL || h->params.database[0] == '\0')
		h->params.database = h->params.user;
	if (h->params.user == NULL || h->cancel_pid == 0)
		return false;
	if (proto_read_byte(r) != 0) {
		struct startup_params reported = {0};

		if (!read_params(r, &reported)) {
			startup_params_free(&reported);
			return false;
		}
		h->reported = param_set_new(&reported);
		startup_params_free(&reported);
	}
	if (!read_credentials(r, &h->cred))
		return false;
	{
		bool has_session = proto_read_byte(r) != 0;

		session_len = proto_read_int32(r);
		session = proto_read_bytes(r, session_len);
		if (session == NULL)
			return false;
		if (has_session) {
			h->session = session_state_deserialize(session, session_len);
			if (h->session == NULL)
				return false;
		}
	}
	*owed_len = proto_read_int32(r);
	*owed = proto_read_bytes(r, *owed_len);
	return *owed != NULL && proto_reader_remaining(r) == 0;
}

static void new_peer_cb(evutil_socket_t fd, short what UNUSED, void *arg UNUSED)
{
	struct client_handover h = {0};
	struct proto_reader r;
	const uint8_t *owed = NULL;
	uint32_t owed_len = 0;
	int fds[1], nfds;
	ssize_t n = recv_message(fd, message_buf, fds, 1, &nfds);

	if (n == 0)
		return;
	if (n < 0) {
		log_info("takeover: the old process is done; %d clients were taken over",
			 nclients_moved);
		close_peer();
		return;
	}
	proto_reader_init(&r, message_buf, (size_t)n);
	if (nfds == 1 && proto_read_byte(&r) == 'C' && read_client(&r, &h, &owed, &owed_len)) {
		/* h is taken, or left to free if the client was gone already. */
		nclients_moved += client_adopt(fds[0], &h, owed, owed_len);
		free_handover(&h);
		OPENSSL_cleanse(message_buf, (size_t)n);
		return;
	}
	OPENSSL_cleanse(message_buf, (size_t)n);
	free_handover(&h);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	/* Whatever sent this is not a pgwing we understand: take nothing more from it. */
	log_error("takeover: a malformed client message from the old process; closing the "
		  "control connection (its clients drain there)");
	close_peer();
}

/* Blocking: the loop does not run yet, and the old process answers at once. */
static int connect_control(void)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct timeval tv = {HELLO_TIMEOUT_S, 0};
	int fd;

	if (socket_path[0] == '\0') {
		log_error("--takeover: takeover_socket is not set, and unix_socket_dir is empty");
		return -1;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", socket_path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		log_error("--takeover: could not connect to the running pgwing at %s: %s",
			  socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!is_own_user(fd)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The 'L' message into socks (and the metrics socket); false if malformed. */
static bool read_sockets(struct proto_reader *r, const int *fds, int nfds,
			 struct listener_socket *socks, int *n, int *metrics_fd)
{
	*n = proto_read_int16(r);
	if (*n > LISTENERS_MAX || *n > nfds)
		return false;
	for (int i = 0; i < *n; i++) {
		uint8_t target = proto_read_byte(r);
		const char *path = proto_read_cstring(r);

		if (path == NULL || strlen(path) >= sizeof(socks[i].unix_path) ||
		    (target != TARGET_RW && target != TARGET_RO))
			return false;
		socks[i].fd = fds[i];
		socks[i].target = (enum target)target;
		snprintf(socks[i].unix_path, sizeof(socks[i].unix_path), "%s", path);
	}
	*metrics_fd = proto_read_byte(r) != 0 ? *n : -1;
	if (*metrics_fd >= 0)
		*metrics_fd = *n < nfds ? fds[*n] : -2;
	return !r->has_failed && proto_reader_remaining(r) == 0 && *metrics_fd != -2 &&
	       nfds == *n + (*metrics_fd >= 0);
}

int takeover_receive_listeners(void)
{
	struct listener_socket socks[LISTENERS_MAX];
	int fds[LISTENERS_MAX + 1], nfds, n = 0, metrics_fd = -1;
	struct evbuffer *msg;
	struct proto_reader r;
	ssize_t len;
	uint8_t type;
	int err;

	if (!resolve_path() || (peer_fd = connect_control()) < 0)
		return -1;
	msg = CHECK_ALLOC(evbuffer_new());
	put_byte(msg, 'H');
	proto_put_int32(msg, TAKEOVER_VERSION);
	err = send_message(peer_fd, msg, NULL, 0);
	evbuffer_free(msg);
	len = err == 0 ? recv_message(peer_fd, message_buf, fds, LISTENERS_MAX + 1, &nfds) : -1;
	if (len <= 0) {
		log_error("--takeover: no answer from the running pgwing at %s%s%s", socket_path,
			  err != 0 ? ": " : "", err != 0 ? strerror(err) : "");
		close_peer();
		return -1;
	}
	proto_reader_init(&r, message_buf, (size_t)len);
	type = proto_read_byte(&r);
	if (type != 'L' || !read_sockets(&r, fds, nfds, socks, &n, &metrics_fd)) {
		if (type == 'E')
			log_error("--takeover: the running pgwing refused: %s",
				  message_buf[len - 1] == '\0' ? (const char *)r.pos
							       : "(no reason given)");
		else
			log_error("--takeover: the running pgwing answered with a malformed "
				  "message");
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		close_peer();
		return -1;
	}
	/* Ours from now: the new config's metrics_listen decides whether it serves. */
	if (metrics_fd >= 0)
		metrics_adopt_socket(metrics_fd);
	if (listener_adopt(rt->base, rt->cfg, socks, n) < 0) {
		close_peer();
		return -1;
	}
	is_adopted = true;
	log_info("--takeover: listening on the %d sockets of the running pgwing", n);
	return 0;
}

int takeover_start(bool is_new)
{
	struct evbuffer *msg;
	int err;

	/* Ours first: once the old process hears from us, nothing here may fail. */
	if (!resolve_path() || listen_control() < 0)
		return -1;
	if (!is_new)
		return 0;
	msg = CHECK_ALLOC(evbuffer_new());
	put_byte(msg, 'A');
	err = send_message(peer_fd, msg, NULL, 0);
	evbuffer_free(msg);
	if (err != 0) {
		log_error("--takeover: the running pgwing went away: %s", strerror(err));
		close_peer();
		return -1;
	}
	phase = PHASE_HANDING;
	is_adopted = false;
	listener_relock();
	evutil_make_socket_nonblocking(peer_fd);
	peer_ev =
		CHECK_ALLOC(event_new(rt->base, peer_fd, EV_READ | EV_PERSIST, new_peer_cb, NULL));
	event_add(peer_ev, NULL);
	log_info("--takeover: the running pgwing stops accepting and hands its clients over");
	return 0;
}

void takeover_stop(void)
{
	/* Failed before the old process heard we listen: its sockets and their files stay its. */
	if (is_adopted) {
		log_error("--takeover failed: the running pgwing keeps its sockets and clients");
		listener_release();
	}
	is_adopted = false;
	close_peer();
	if (sweep_timer != NULL)
		event_free(sweep_timer);
	sweep_timer = NULL;
	link_set_handover(NULL);
	if (listen_ev != NULL)
		event_free(listen_ev);
	listen_ev = NULL;
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(socket_path);
	}
	listen_fd = -1;
}
