/*
 * Connection sockets and the move of bytes between two of them. While a
 * socket is plaintext pgwing reads it itself, with one recv: no FIONREAD
 * before each read, and reads as large as the data needs, where a bufferevent
 * reads 4 kB at a time. What the other side's socket takes at once is sent
 * from here too; queued writes, TLS and connecting stay with the bufferevent.
 *
 * A read into an empty input lands in one buffer shared by all connections
 * (the "fresh bytes"), not in the input's chains: forwarding scans and sends
 * them from there, so a request or an answer that goes straight through
 * costs no allocation and no chain bookkeeping, and the memory it touches is
 * the same few cache lines for every connection. Whatever is still unread
 * when the read's callback returns (a partial message, a held answer), or as
 * soon as anything asks for the input buffer, is copied into the input, in
 * order, and later reads append to it as before.
 */
#include "pgwing/conn.h"

#include "pgwing/config.h"
#include "pgwing/log.h"
#include "pgwing/proto.h"
#include "pgwing/runtime.h"
#include "pgwing/tls.h"

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* The process state, given by the runtime at start (conn_init): read, never written. */
static const struct runtime *rt;

void conn_init(const struct runtime *runtime)
{
	rt = runtime;
}

/*
 * A read's buffer starts at 1 kB (most requests and answers are smaller, and
 * the allocator serves that size from its fastest cache), doubles up to
 * 64 kB while reads fill it (a large result streaming in), and halves when
 * one does not: a connection between requests holds no large buffer. The
 * sizes leave room for libevent's chain header within the allocation.
 */
#define CONN_CHAIN_ROOM 128
#define CONN_READ_MIN   (1024 - CONN_CHAIN_ROOM)
#define CONN_READ_MAX   (65536 - CONN_CHAIN_ROOM)

/* The most chains one direct send takes; the rest goes through the output buffer. */
#define CONN_SEND_VECS 16

/* The fresh bytes: owner is the connection they were read from, during its read callback. */
static uint8_t fresh_buf[CONN_READ_MAX];
static struct {
	struct conn *owner;
	const uint8_t *data;
	size_t len;
} fresh;

static void out_of_memory(void)
{
	log_error("cannot buffer bytes: out of memory");
	abort();
}

/* The fresh bytes left join their connection's input, which they follow. */
static void fresh_keep(void)
{
	if (fresh.len > 0 && evbuffer_add(fresh.owner->in, fresh.data, fresh.len) != 0)
		out_of_memory();
	fresh.owner = NULL;
}

/*
 * recv/send (recvmsg/sendmsg for several extents), not readv/writev: the
 * socket calls skip the file layer's permission hook and fsnotify, which cost
 * pgwing a tenth more kernel time per query than PgBouncer on loopback, with
 * the same number of calls.
 */
static ssize_t sock_recv(int fd, struct iovec *vec, int nvec)
{
	struct msghdr mh = {.msg_iov = vec, .msg_iovlen = (size_t)nvec};

	return nvec == 1 ? recv(fd, vec[0].iov_base, vec[0].iov_len, 0) : recvmsg(fd, &mh, 0);
}

static ssize_t sock_send(int fd, struct iovec *vec, int nvec)
{
	struct msghdr mh = {.msg_iov = vec, .msg_iovlen = (size_t)nvec};

	return nvec == 1 ? send(fd, vec[0].iov_base, vec[0].iov_len, MSG_NOSIGNAL)
			 : sendmsg(fd, &mh, MSG_NOSIGNAL);
}

/* Shorten the extents to limit bytes in all; returns their length before. */
static size_t iov_clip(struct iovec *vec, int nvec, size_t limit)
{
	size_t total = 0;

	for (int i = 0; i < nvec; i++) {
		total += vec[i].iov_len;
		if (vec[i].iov_len > limit)
			vec[i].iov_len = limit;
		limit -= vec[i].iov_len;
	}
	return total;
}

/* A failed or empty read: retried later, or the end of reading, which the event callback hears. */
static void conn_read_failed(struct conn *c, ssize_t got, int err)
{
	if (got < 0 && (err == EAGAIN || err == EWOULDBLOCK || err == EINTR))
		return;
	/* As a bufferevent: reading ends, and the event callback hears why. */
	conn_read_off(c);
	errno = err;
	c->event_cb(c->bev, BEV_EVENT_READING | (got == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR),
		    c->arg);
}

/* A read into an input that holds bytes already: appended to its chains. */
static void conn_read_append(struct conn *c, struct evbuffer *in)
{
	struct evbuffer_iovec vec[2];
	size_t space;
	ssize_t got;
	int nvec, err;

	nvec = evbuffer_reserve_space(in, (ev_ssize_t)c->read_size, vec, 2);
	if (nvec < 0) {
		errno = ENOMEM;
		got = -1;
	} else {
		got = sock_recv(c->plain_fd, vec, nvec);
	}
	err = errno;
	space = iov_clip(vec, nvec, got > 0 ? (size_t)got : 0);
	if (nvec > 0)
		evbuffer_commit_space(in, vec, nvec);
	if (got <= 0) {
		conn_read_failed(c, got, err);
		return;
	}
	if ((size_t)got == space && c->read_size < CONN_READ_MAX)
		c->read_size = c->read_size * 2 + CONN_CHAIN_ROOM;
	else if ((size_t)got < space && c->read_size > CONN_READ_MIN)
		c->read_size = (c->read_size - CONN_CHAIN_ROOM) / 2;
	c->read_cb(c->bev, c->arg);
}

static void conn_read_ready(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = c->in;
	ssize_t got;

	(void)what;
	/*
	 * The shared buffer still in use would mean a read inside another read's
	 * callback (none does that): it appends, as a read onto buffered bytes.
	 */
	if (evbuffer_get_length(in) > 0 || fresh.owner != NULL) {
		conn_read_append(c, in);
		return;
	}
	got = recv(fd, fresh_buf, sizeof(fresh_buf), 0);
	if (got <= 0) {
		conn_read_failed(c, got, errno);
		return;
	}
	fresh.owner = c;
	fresh.data = fresh_buf;
	fresh.len = (size_t)got;
	c->read_cb(c->bev, c->arg);
	/* Unless c was closed (conn_close let them go) or its input was asked for. */
	if (fresh.owner == c)
		fresh_keep();
}

/* The socket's bufferevent, or the TLS filter that replaces it, and its buffers. */
static void conn_use_bev(struct conn *c, struct bufferevent *bev)
{
	c->bev = bev;
	c->in = bufferevent_get_input(bev);
	c->out = bufferevent_get_output(bev);
}

bool conn_open(struct conn *c, int fd, bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
	       bufferevent_event_cb event_cb, void *arg)
{
	struct bufferevent *bev;

	c->plain_fd = -1;
	c->is_reading = false;
	c->read_size = CONN_READ_MIN;
	bev = bufferevent_socket_new(rt->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	conn_use_bev(c, bev);
	conn_set_callbacks(c, read_cb, write_cb, event_cb, arg);
	if (fd >= 0)
		conn_connected(c);
	return true;
}

void conn_connected(struct conn *c)
{
	c->plain_fd = bufferevent_getfd(c->bev);
	/*
	 * A socket bufferevent freezes its input's end so that only its own reads
	 * add to it; they are ours now (and it unfreezes it itself when it reads).
	 */
	evbuffer_unfreeze(c->in, 0);
	event_assign(&c->read_ev, rt->base, c->plain_fd, EV_READ | EV_PERSIST, conn_read_ready, c);
	if (c->is_reading)
		event_add(&c->read_ev, NULL);
}

void conn_set_callbacks(struct conn *c, bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
			bufferevent_event_cb event_cb, void *arg)
{
	c->read_cb = read_cb;
	c->event_cb = event_cb;
	c->arg = arg;
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, arg);
}

/* The socket's own reads end here: the TLS filter reads it through the bufferevent. */
static void conn_stop_own_reads(struct conn *c)
{
	if (c->plain_fd >= 0)
		event_del(&c->read_ev);
	c->plain_fd = -1;
}

bool conn_start_tls(struct conn *c, SSL *ssl, bool is_accepting)
{
	struct bufferevent *raw = c->bev;
	struct bufferevent *bev;
	bufferevent_data_cb write_cb;

	conn_input(c); /* bytes read before the handshake wait in the socket's input */
	bufferevent_getcb(raw, NULL, &write_cb, NULL, NULL);
	conn_stop_own_reads(c);
	bev = bufferevent_openssl_filter_new(rt->base, raw, ssl,
					     is_accepting ? BUFFEREVENT_SSL_ACCEPTING
							  : BUFFEREVENT_SSL_CONNECTING,
					     BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return false;
	}
	/*
	 * Many clients close without close_notify, and so does a server that
	 * ends a session (libpq allows it too): an end, not an attack.
	 */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	conn_use_bev(c, bev);
	conn_set_callbacks(c, c->read_cb, write_cb, c->event_cb, c->arg);
	c->is_reading = false;
	return true;
}

void conn_read_on(struct conn *c)
{
	if (c->is_reading)
		return;
	c->is_reading = true;
	if (c->plain_fd >= 0)
		event_add(&c->read_ev, NULL);
	else if (tls_of(c->bev) != NULL)
		bufferevent_enable(c->bev, EV_READ);
	/* else: not connected yet; conn_connected() starts the reads */
}

void conn_read_off(struct conn *c)
{
	if (!c->is_reading)
		return;
	c->is_reading = false;
	if (c->plain_fd >= 0)
		event_del(&c->read_ev);
	else
		bufferevent_disable(c->bev, EV_READ);
}

/*
 * One non-blocking attempt to write what c has queued (encrypted, for TLS)
 * straight to its socket: a last message (Terminate, a FATAL) before the
 * bufferevent is freed; if the socket is full, the close says the rest.
 */
static void conn_flush_once(struct conn *c)
{
	struct bufferevent *raw = bufferevent_get_underlying(c->bev);
	struct evbuffer *out;

	if (raw == NULL)
		raw = c->bev;
	if (bufferevent_getfd(raw) < 0)
		return; /* never connected */
	out = bufferevent_get_output(raw);
	/* A socket bufferevent freezes its output's start so only it drains it: it is ending. */
	evbuffer_unfreeze(out, 1);
	evbuffer_write(out, bufferevent_getfd(raw));
	evbuffer_freeze(out, 1);
}

void conn_close(struct conn *c)
{
	if (fresh.owner == c)
		fresh.owner = NULL; /* unread bytes go with the connection */
	conn_flush_once(c);
	conn_stop_own_reads(c);
	bufferevent_free(c->bev);
	c->bev = NULL;
	c->in = NULL;
	c->out = NULL;
}

struct evbuffer *conn_input(struct conn *c)
{
	if (fresh.owner == c)
		fresh_keep();
	return c->in;
}

size_t conn_input_length(const struct conn *c)
{
	return (fresh.owner == c ? fresh.len : 0) + evbuffer_get_length(c->in);
}

enum proto_scan conn_scan(struct conn *c, uint32_t max_len, uint32_t *remaining, size_t *movable,
			  proto_inspect_fn inspect, void *arg)
{
	if (fresh.owner == c)
		return proto_scan_bytes(fresh.data, fresh.len, max_len, remaining, movable, inspect,
					arg);
	return proto_scan_messages(c->in, max_len, remaining, movable, inspect, arg);
}

/*
 * While dst has nothing queued and is a plain socket, the bytes are written to
 * it at once, straight from where they were read: most requests and answers
 * fit the socket buffer, and this saves arming dst's write event, a turn of
 * the loop and the write callback after it. What the socket doesn't take goes
 * through dst's output as always; so does everything after a failed write,
 * which dst's own next write then reports.
 */
void conn_move(struct conn *src, struct conn *dst, size_t n)
{
	struct evbuffer *out = dst->out;
	bool can_send = dst->plain_fd >= 0 && evbuffer_get_length(out) == 0;
	struct evbuffer_iovec vec[CONN_SEND_VECS];
	ssize_t sent = 0;

	if (fresh.owner == src) {
		const uint8_t *data = fresh.data;

		fresh.data += n;
		fresh.len -= n;
		if (can_send) {
			vec[0].iov_base = (void *)data;
			vec[0].iov_len = n;
			sent = sock_send(dst->plain_fd, vec, 1);
		}
		if (sent < 0)
			sent = 0;
		if ((size_t)sent < n && evbuffer_add(out, data + sent, n - (size_t)sent) != 0)
			out_of_memory();
		return;
	}
	if (can_send) {
		struct evbuffer *in = src->in;
		int nvec = evbuffer_peek(in, (ev_ssize_t)n, NULL, vec, CONN_SEND_VECS);

		if (nvec > CONN_SEND_VECS)
			nvec = CONN_SEND_VECS;
		iov_clip(vec, nvec, n);
		sent = nvec > 0 ? sock_send(dst->plain_fd, vec, nvec) : -1;
		if (sent > 0) {
			evbuffer_drain(in, (size_t)sent);
			n -= (size_t)sent;
		}
	}
	if (n > 0)
		evbuffer_remove_buffer(src->in, out, n);
}

/*
 * Forwarding stops reading from one side while the other side's output holds
 * forward_buffer_size, and resumes when it drains below a quarter of it:
 * memory per connection stays bounded whatever the peer's speed.
 */
bool conn_throttle(struct conn *src, struct conn *dst)
{
	size_t high = (size_t)rt->cfg->forward_buffer_size;

	if (evbuffer_get_length(dst->out) < high)
		return false;
	conn_read_off(src);
	bufferevent_setwatermark(dst->bev, EV_WRITE, high / 4, 0);
	return true;
}

void conn_drained(struct conn *src, struct conn *dst)
{
	if (src->is_reading)
		return;
	bufferevent_setwatermark(dst->bev, EV_WRITE, 0, 0);
	conn_read_on(src);
}
