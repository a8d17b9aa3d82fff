/*
 * Cancel keys. Each client gets its own (pid, key) from pgwing; a CancelRequest
 * carrying it is sent, with the server's own key, on a fresh connection to the
 * backend the client is on. Lookups scan a list: cancels are rare, and the
 * list costs nothing on the paths that run per query.
 */
#include "pgwing/cancel.h"

#include "pgwing/client.h"
#include "pgwing/log.h"
#include "pgwing/proto.h"
#include "pgwing/runtime.h"
#include "pgwing/server.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <stdlib.h>
#include <string.h>

/* The process state, given by the runtime at start (cancel_init): read, never written. */
static const struct runtime *rt;

void cancel_init(const struct runtime *runtime)
{
	rt = runtime;
}

struct cancel_entry {
	struct client *client;
	TAILQ_ENTRY(cancel_entry) link;
};

static TAILQ_HEAD(, cancel_entry) entries = TAILQ_HEAD_INITIALIZER(entries);
static uint32_t next_pid;

void cancel_register(struct client *cl)
{
	struct cancel_entry *e = xcalloc(1, sizeof(*e));

	/*
	 * Sequential pids never collide; a random start keeps them apart across
	 * restarts, and from the keys of clients handed over (which keep theirs).
	 */
	if (next_pid == 0 && RAND_bytes((unsigned char *)&next_pid, sizeof(next_pid)) != 1)
		next_pid = (uint32_t)now_ms();
	if (cl->cancel_pid == 0) {
		next_pid = (next_pid & 0x3fffffff) + 1;
		cl->cancel_pid = next_pid;
		if (RAND_bytes((unsigned char *)&cl->cancel_key, sizeof(cl->cancel_key)) != 1) {
			log_error("RAND_bytes failed: cannot make a cancel key");
			abort();
		}
	}
	e->client = cl;
	TAILQ_INSERT_TAIL(&entries, e, link);
}

void cancel_unregister(struct client *cl)
{
	struct cancel_entry *e;

	if (cl->cancel_pid == 0)
		return;
	TAILQ_FOREACH (e, &entries, link) {
		if (e->client == cl) {
			TAILQ_REMOVE(&entries, e, link);
			free(e);
			break;
		}
	}
	cl->cancel_pid = 0;
}

static void cancel_done_cb(struct bufferevent *bev, void *arg UNUSED)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void cancel_event_cb(struct bufferevent *bev, short what, void *arg UNUSED)
{
	if (what & BEV_EVENT_CONNECTED)
		return;
	log_info("could not send cancel request to backend: %s",
		 (what & BEV_EVENT_TIMEOUT) ? "timeout"
					    : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	bufferevent_free(bev);
}

void cancel_forward(uint32_t pid, uint32_t key)
{
	struct cancel_entry *e;
	struct server *sv;
	struct bufferevent *bev;
	struct timeval tv;

	TAILQ_FOREACH (e, &entries, link) {
		if (e->client->cancel_pid == pid &&
		    CRYPTO_memcmp(&e->client->cancel_key, &key, sizeof(key)) == 0)
			break;
	}
	if (e == NULL) {
		log_debug("cancel request with an unknown key ignored");
		return;
	}
	sv = e->client->server;
	if (sv == NULL || sv->state != SV_ACTIVE) {
		log_debug("cancel request for client %" PRIu64 " with no server: nothing to cancel",
			  e->client->id);
		return;
	}
	bev = bufferevent_socket_new(rt->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		return;
	tv.tv_sec = rt->cfg->server_connect_timeout_ms / 1000;
	tv.tv_usec = (rt->cfg->server_connect_timeout_ms % 1000) * 1000;
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setcb(bev, NULL, cancel_done_cb, cancel_event_cb, NULL);
	proto_put_cancel(bufferevent_get_output(bev), sv->backend_pid, sv->backend_key);
	/*
	 * It may land after the query it was meant for: the server is reset when
	 * given back, so a late cancel fails the reset (which closes it) sooner
	 * than the next session's query.
	 */
	server_mark_dirty(sv);
	log_debug("forwarding cancel for client %" PRIu64 " to %s pid %u", e->client->id,
		  sv->backend_name, sv->backend_pid);
	if (server_connect_socket(bev, sv->backend_host, sv->backend_port) < 0) {
		log_info("could not send cancel request to backend %s", sv->backend_name);
		bufferevent_free(bev);
	}
}
