/*
 * delay_relay: a TCP relay on loopback that holds every byte for a fixed
 * one-way delay in each direction, so that a server on this machine looks
 * far away (netem, the kernel's way, needs privileges a container lacks).
 *
 *   delay_relay LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS
 *
 * It listens on 127.0.0.1:LISTEN_PORT (0: a free port), connects each
 * accepted connection to TARGET_HOST:TARGET_PORT (a numeric loopback address:
 * 127.0.0.0/8 or ::1) and passes the bytes both ways, each DELAY_MS (a decimal,
 * e.g. 15 or 0.5) after it arrived: 15 adds 30 ms to every round trip. Order
 * is kept, any number of connections, one thread, nothing blocks. Once
 * listening it prints "listening on PORT" on stdout. The TCP handshake to the
 * target is not delayed; a close is, like the bytes before it. SIGINT or
 * SIGTERM stops it. Used by tests/lib/PgWing/Test.pm (PgWing::Test::DelayRelay)
 * and contrib/bench/run.
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/*
 * Bytes held for one direction beyond which the relay stops reading from its
 * sender until the receiver has taken them: a slow reader slows the sender,
 * as TCP's window does, instead of growing the relay without bound.
 */
#define HOLD_LIMIT (4 * 1024 * 1024)

/* Bytes that arrived together, due DELAY after their arrival; len 0 is the sender's close. */
struct chunk {
	struct chunk *next;
	uint64_t due_us;
	size_t len;
};

struct pair;

/* One direction of a relayed connection: what `from` sent, held until due for `to`. */
struct direction {
	struct pair *pair;
	struct bufferevent *from, *to;
	struct evbuffer *held;
	struct chunk *head, *tail;
	struct event *timer;
	bool eof;     /* `from` closed: its close is queued after its bytes */
	bool closing; /* that close is due: the pair ends once `to` has taken the rest */
};

struct pair {
	struct direction dir[2]; /* 0: client to target, 1: target to client */
};

static struct event_base *base;
static struct sockaddr_storage target;
static socklen_t target_len;
static uint64_t delay_us;

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static void pair_free(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		struct direction *d = &p->dir[i];

		while (d->head != NULL) {
			struct chunk *c = d->head;

			d->head = c->next;
			free(c);
		}
		event_free(d->timer);
		evbuffer_free(d->held);
		bufferevent_free(d->from);
	}
	free(p);
}

static void direction_arm(struct direction *d)
{
	uint64_t now = now_us();
	uint64_t wait = d->head->due_us > now ? d->head->due_us - now : 0;
	struct timeval tv = {.tv_sec = (time_t)(wait / 1000000),
			     .tv_usec = (suseconds_t)(wait % 1000000)};

	evtimer_add(d->timer, &tv);
}

static void direction_push(struct direction *d, size_t len)
{
	struct chunk *c = malloc(sizeof(*c));

	if (c == NULL) {
		fprintf(stderr, "delay_relay: out of memory\n");
		exit(1);
	}
	c->next = NULL;
	c->due_us = now_us() + delay_us;
	c->len = len;
	if (d->tail != NULL)
		d->tail->next = c;
	else
		d->head = c;
	d->tail = c;
	if (!evtimer_pending(d->timer, NULL))
		direction_arm(d);
}

static size_t direction_backlog(const struct direction *d)
{
	return evbuffer_get_length(d->held) + evbuffer_get_length(bufferevent_get_output(d->to));
}

/* The due chunks go to the receiver, in order; the close last, once all is written. */
static void on_due(evutil_socket_t fd, short what, void *arg)
{
	struct direction *d = arg;
	uint64_t now = now_us();

	(void)fd;
	(void)what;
	while (d->head != NULL && d->head->due_us <= now) {
		struct chunk *c = d->head;

		if (c->len > 0)
			evbuffer_remove_buffer(d->held, bufferevent_get_output(d->to), c->len);
		else
			d->closing = true;
		d->head = c->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(c);
	}
	if (d->closing) {
		if (evbuffer_get_length(bufferevent_get_output(d->to)) == 0)
			pair_free(d->pair);
		return;
	}
	if (d->head != NULL)
		direction_arm(d);
}

static struct direction *direction_from(struct pair *p, struct bufferevent *bev)
{
	return p->dir[0].from == bev ? &p->dir[0] : &p->dir[1];
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct direction *d = direction_from(arg, bev);
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len = evbuffer_get_length(in);

	if (len == 0 || d->eof)
		return;
	evbuffer_add_buffer(d->held, in);
	direction_push(d, len);
	if (direction_backlog(d) >= HOLD_LIMIT)
		bufferevent_disable(bev, EV_READ);
}

/* `bev`'s output has drained: the direction writing to it may end, or read again. */
static void on_written(struct bufferevent *bev, void *arg)
{
	struct pair *p = arg;
	struct direction *d = p->dir[0].to == bev ? &p->dir[0] : &p->dir[1];

	if (d->closing) {
		pair_free(p);
		return;
	}
	if (!(bufferevent_get_enabled(d->from) & EV_READ) && direction_backlog(d) < HOLD_LIMIT)
		bufferevent_enable(d->from, EV_READ);
}

/* A close or an error on one side reaches the other side DELAY later, after its bytes. */
static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct direction *d = direction_from(arg, bev);

	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) || d->eof)
		return;
	if ((what & BEV_EVENT_ERROR) && bev == d->pair->dir[1].from)
		fprintf(stderr, "delay_relay: target: %s\n",
			evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	d->eof = true;
	bufferevent_disable(bev, EV_READ);
	direction_push(d, 0);
}

static void set_nodelay(struct bufferevent *bev)
{
	int one = 1;

	/* Small protocol messages go at once; Nagle would add its own delay. */
	setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
		      void *arg)
{
	struct pair *p = calloc(1, sizeof(*p));
	struct bufferevent *client, *server;

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	if (p == NULL) {
		evutil_closesocket(fd);
		return;
	}
	client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	server = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	p->dir[0] = (struct direction){.pair = p, .from = client, .to = server};
	p->dir[1] = (struct direction){.pair = p, .from = server, .to = client};
	for (int i = 0; i < 2; i++) {
		struct direction *d = &p->dir[i];

		d->held = evbuffer_new();
		d->timer = evtimer_new(base, on_due, d);
		bufferevent_setcb(d->from, on_read, on_written, on_event, p);
		bufferevent_enable(d->from, EV_READ | EV_WRITE);
	}
	set_nodelay(client);
	if (bufferevent_socket_connect(server, (struct sockaddr *)&target, (int)target_len) < 0) {
		fprintf(stderr, "delay_relay: connect: %s\n", strerror(errno));
		pair_free(p);
		return;
	}
	set_nodelay(server);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(base);
}

static bool parse_loopback(const char *host, int port)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&target;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&target;

	memset(&target, 0, sizeof(target));
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)port);
		target_len = sizeof(*v4);
		return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)port);
		target_len = sizeof(*v6);
		return IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
	}
	return false;
}

static int parse_port(const char *s)
{
	char *end;
	long v = strtol(s, &end, 10);

	return *s != '\0' && *end == '\0' && v >= 0 && v <= 65535 ? (int)v : -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in listen_addr = {.sin_family = AF_INET};
	struct sockaddr_in bound;
	socklen_t bound_len = sizeof(bound);
	struct event_config *cfg;
	struct evconnlistener *listener;
	struct event *sigint, *sigterm;
	int lport, tport;
	double delay_ms;
	char *end;

	if (argc != 5) {
		fprintf(stderr,
			"usage: delay_relay LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MS\n");
		return 2;
	}
	lport = parse_port(argv[1]);
	tport = parse_port(argv[3]);
	delay_ms = strtod(argv[4], &end);
	if (lport < 0 || tport <= 0 || *end != '\0' || end == argv[4] || !(delay_ms >= 0) ||
	    delay_ms > 60000) {
		fprintf(stderr, "delay_relay: bad port or delay (0 to 60000 ms)\n");
		return 2;
	}
	if (!parse_loopback(argv[2], tport)) {
		fprintf(stderr, "delay_relay: %s is not a numeric loopback address\n", argv[2]);
		return 2;
	}
	delay_us = (uint64_t)(delay_ms * 1000 + 0.5);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * A precise timer (timerfd with epoll) fires to the microsecond, where
	 * epoll's own timeout rounds to whole milliseconds: up to 1 ms too late
	 * per hop, 2 per round trip. No cached time: a chunk's due time and its
	 * timer are both taken from the clock as it is.
	 */
	cfg = event_config_new();
	event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER | EVENT_BASE_FLAG_NO_CACHE_TIME);
	base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (base == NULL) {
		fprintf(stderr, "delay_relay: no event base\n");
		return 1;
	}
	listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_addr.sin_port = htons((uint16_t)lport);
	listener = evconnlistener_new_bind(base, on_accept, NULL,
					   LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE, 128,
					   (struct sockaddr *)&listen_addr, sizeof(listen_addr));
	if (listener == NULL) {
		fprintf(stderr, "delay_relay: listen on 127.0.0.1:%d: %s\n", lport,
			strerror(errno));
		return 1;
	}
	getsockname(evconnlistener_get_fd(listener), (struct sockaddr *)&bound, &bound_len);
	sigint = evsignal_new(base, SIGINT, on_signal, NULL);
	sigterm = evsignal_new(base, SIGTERM, on_signal, NULL);
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);
	printf("listening on %d\n", ntohs(bound.sin_port));
	fflush(stdout);
	event_base_dispatch(base);
	event_free(sigint);
	event_free(sigterm);
	evconnlistener_free(listener);
	event_base_free(base);
	return 0;
}
