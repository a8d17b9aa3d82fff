/*
 * The admin console: the pseudo database "pgwing", answered by pgwing itself
 * with real result sets over the simple-query protocol.
 */
#ifndef PGWING_ADMIN_H
#define PGWING_ADMIN_H

#include "pgwing/common.h"

struct client;
struct evbuffer;
struct server;

#define ADMIN_DATABASE "pgwing"

enum admin_role {
	ADMIN_ROLE_NONE,  /* may not use the console */
	ADMIN_ROLE_STATS, /* SHOW only */
	ADMIN_ROLE_ADMIN, /* everything */
};

/* From admin_users / stats_users. */
enum admin_role admin_role_of(const char *user);
/* A console client logged in: send ParameterStatus, BackendKeyData and ReadyForQuery. */
void admin_welcome(struct client *cl);
/*
 * Whether the console takes the client's next message now; if not, reading
 * stops, and admin_drained() takes up the messages already read.
 */
bool admin_is_ready(struct client *cl);
/*
 * The client's output drained (or its PAUSE ended): it is read again, the
 * messages it already sent first. The client may be closed (and freed) on return.
 */
void admin_drained(struct client *cl);
/* One complete message from a console client (type byte, body without header). */
void admin_handle_message(struct client *cl, char type, const uint8_t *body, size_t len);
/* The client is being freed: drop what the console keeps for it (a waiting PAUSE). */
void admin_client_gone(struct client *cl);

/*
 * SHOW BACKENDS and SHOW POOLS as JSON arrays of objects, one per row, keyed by
 * column name: the same rows the console gives, for the HTTP /status.
 */
void admin_put_backends_json(struct evbuffer *out);
void admin_put_pools_json(struct evbuffer *out);

/* State names as the console and the metrics show them. */
const char *admin_client_state_name(const struct client *cl);
const char *admin_server_state_name(const struct server *sv);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void admin_init(const struct runtime *runtime);

#endif
