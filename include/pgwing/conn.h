/*
 * A connection's socket, for both the client and the server side: a
 * bufferevent for output, TLS and connecting, and pgwing's own reads while
 * the socket is plaintext (a bufferevent asks the kernel how much is readable
 * before every read, one system call more per message, and reads at most
 * 4 kB). Forwarding between two connections lives here too: the move of
 * bytes from one's input to the other, and the backpressure between them.
 *
 * A read into an empty input lands in a buffer shared by all connections,
 * valid during that read's callback: conn_scan() and conn_move() use the
 * bytes there, and conn_input() (which every other reader of the input goes
 * through) first appends what is left of them to the input buffer.
 */
#ifndef PGWING_CONN_H
#define PGWING_CONN_H

#include "pgwing/proto.h"

#include <event2/bufferevent.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * The read event and the buffers' addresses are kept here, next to what the
 * forwarding reads anyway: with dozens of busy connections, each separate
 * structure a read touches first is a cache miss.
 */
struct conn {
	struct bufferevent *bev; /* the socket's, or the TLS filter over it */
	struct evbuffer *in;     /* bev's input and output */
	struct evbuffer *out;
	int plain_fd;         /* the connected socket while it is plaintext, else -1 */
	struct event read_ev; /* pgwing's reads of plain_fd (while >= 0), in place of bev's */
	bool is_reading;
	size_t read_size; /* a read onto buffered bytes: grows while reads fill it */
	bufferevent_data_cb read_cb;
	bufferevent_event_cb event_cb;
	void *arg;
};

/*
 * Set up c on an accepted socket, or, with fd -1, on one to connect
 * (conn_connected() once it is). Reading starts off. Returns false when out
 * of memory; fd is closed then.
 */
bool conn_open(struct conn *c, int fd, bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
	       bufferevent_event_cb event_cb, void *arg);
/* The socket connected (BEV_EVENT_CONNECTED on a plaintext c): pgwing reads it from now on. */
void conn_connected(struct conn *c);
/* Change the callbacks (read, write, event) of c. */
void conn_set_callbacks(struct conn *c, bufferevent_data_cb read_cb, bufferevent_data_cb write_cb,
			bufferevent_event_cb event_cb, void *arg);
/*
 * Wrap c in TLS (ssl is owned by c from now on, also on failure): bytes
 * already read wait for the handshake in the socket's input. Reading is off:
 * conn_read_on() starts the handshake, at once on bytes already read, so its
 * callbacks may run (and end the connection) before it returns.
 * Returns false when out of memory.
 */
bool conn_start_tls(struct conn *c, SSL *ssl, bool is_accepting);
void conn_read_on(struct conn *c);
void conn_read_off(struct conn *c);
/* Sends what is queued once more (a last message), then frees c's socket. */
void conn_close(struct conn *c);

/*
 * Move the first n bytes of src's input on to dst, both directions' one way
 * of sending.
 */
void conn_move(struct conn *src, struct conn *dst, size_t n);
/*
 * Backpressure, shared by both directions (and the console, whose src is its
 * dst): when dst holds too much unsent data, stop reading src and return true;
 * conn_drained() resumes it once dst's output drains.
 */
bool conn_throttle(struct conn *src, struct conn *dst);
void conn_drained(struct conn *src, struct conn *dst);

/* How many bytes of c's input are unread, without gathering them (conn_input does). */
size_t conn_input_length(const struct conn *c);
/* c's input buffer, with any bytes of the read running now that are still unread. */
struct evbuffer *conn_input(struct conn *c);
/*
 * The forwarding scan (proto_scan_messages) over c's unread bytes, in place:
 * the read running now, or else the input buffer.
 */
enum proto_scan conn_scan(struct conn *c, uint32_t max_len, uint32_t *remaining, size_t *movable,
			  proto_inspect_fn inspect, void *arg);

static inline struct evbuffer *conn_output(const struct conn *c)
{
	return c->out;
}

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void conn_init(const struct runtime *runtime);

#endif
