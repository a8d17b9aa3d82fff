/*
 * The HTTP endpoints on metrics_listen, served by evhttp on the main loop:
 * GET /metrics (Prometheus), /livez (the loop answers), /readyz (200 when the
 * rw port can be served now or after a hold expected to end, 503 while
 * draining or with no usable primary; the body says why) and /status (the
 * same, with SHOW BACKENDS and SHOW POOLS, as JSON). A request only reads
 * counters and walks the client list, so it never waits on anything and never
 * holds up the data path for long. Clients are bounded (metrics_timeout,
 * metrics_max_request_size, metrics_max_conn) so that a silent, oversized or
 * numerous one cannot take the fds, memory or loop the clients need.
 */
#ifndef PGWING_METRICS_H
#define PGWING_METRICS_H

#include "pgwing/config.h"

struct event_base;
struct evbuffer;

/* Listen on cfg->metrics_listen ("host:port"); nothing when it is empty. */
int metrics_start(struct event_base *base, const struct config *cfg);
void metrics_stop(void);
/*
 * A takeover hands the HTTP listening socket over with the others: its fd
 * (-1: none), the one metrics_start listens on instead of binding, and, once
 * the new process listens, the old one's letting go of it (its connections
 * are served to the end).
 */
int metrics_socket(void);
void metrics_adopt_socket(int fd);
void metrics_release_socket(void);
/* The current state in the Prometheus text format (version 0.0.4). */
void metrics_render(struct evbuffer *out);
/* text as a JSON string, quotes included (the text is UTF-8, as the config's). */
void metrics_put_json_string(struct evbuffer *out, const char *text);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void metrics_init(const struct runtime *runtime);

#endif
