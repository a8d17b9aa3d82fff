/*
 * auth_query: the stored password (SCRAM secret, md5 hash) of a user missing
 * from the auth file, looked up in Postgres as auth_user and remembered for
 * auth_cache_ttl. Lookups run one at a time on one async libpq connection to
 * the primary, closed as soon as nothing is left to look up, so it never keeps
 * a sleeping database awake; logins of one user share one lookup.
 */
#ifndef PGWING_AUTH_QUERY_H
#define PGWING_AUTH_QUERY_H

#include "pgwing/common.h"
#include "pgwing/config.h"

struct auth_query_wait;

/*
 * stored: the user's stored password, NULL when there is no such user (or it
 * has no password); valid during the call only.
 */
typedef void (*auth_query_done_fn)(void *arg, const char *stored);

bool auth_query_is_enabled(const struct config *cfg);
/*
 * When the cache holds a fresh answer for user: true, with *stored as done()
 * would get it. Otherwise false: done(arg, stored) runs later from the loop
 * (the lookup waits out a down or sleeping database, waking it), unless
 * auth_query_cancel(*wait) comes first.
 */
bool auth_query_lookup(const char *user, auth_query_done_fn done, void *arg,
		       struct auth_query_wait **wait, const char **stored);
void auth_query_cancel(struct auth_query_wait *wait);
/* Why lookups are not answered right now (for a client given up on), or "". */
const char *auth_query_last_error(void);
/*
 * A login of user failed: its next login looks it up afresh, so a password
 * changed (or a user created) since the answer was cached works at the next
 * try instead of after auth_cache_ttl. Every failure does it, of known and
 * unknown users alike, so it tells an attacker nothing.
 */
void auth_query_forget_user(const char *user);
/* Drop everything remembered (a reload may have changed the query or the user). */
void auth_query_forget(void);
/* At exit: close the connection and free the cache; waiters are not called. */
void auth_query_stop(void);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void auth_query_init(const struct runtime *runtime);

#endif
