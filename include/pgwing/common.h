/*
 * Definitions every module shares: the build's config header, a few helpers
 * and the fixed-size types used on the wire.
 */
#ifndef PGWING_COMMON_H
#define PGWING_COMMON_H

#include "pgwing/autoconfig.h"

#include <stdbool.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdint.h>

#define ARRAY_SIZE(a)     (sizeof(a) / sizeof((a)[0]))
#define UNUSED            __attribute__((unused))
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))

/* Which kind of server a client asked for: decided by the port it came in on. */
enum target {
	TARGET_RW, /* read-write: the current primary */
	TARGET_RO, /* read-only: the nearest healthy replica */
};

const char *target_name(enum target target);

/* Allocation that never returns NULL: running out of memory aborts with a message. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
/*
 * The same rule for what libraries allocate (libevent's events, buffers and
 * connections): CHECK_ALLOC(evbuffer_new()) aborts with a message naming the
 * call when it returns NULL.
 */
#define CHECK_ALLOC(call) check_alloc_of((call), #call)
void *check_alloc_of(void *p, const char *call);

/* Milliseconds and microseconds on a monotonic clock. */
int64_t now_ms(void);
int64_t now_us(void);

/* Arms a libevent timer to fire in ms milliseconds (0: on the next loop turn). */
struct event;
void timer_add_ms(struct event *ev, int64_t ms);

/*
 * The lifetime rule for objects closed inside a callback chain (a client read
 * that forwards, readies a server, closes the client, gives back the server):
 * the object is unlinked and marked closed at once, and its memory is freed by
 * release(obj) only when the loop is back from the chain, so no caller up the
 * chain ever touches freed memory (PgBouncer's "just freed" lists). free_later
 * needs free_later_start; free_later_stop releases what is left, at exit.
 */
struct event_base;
bool free_later_start(struct event_base *base);
void free_later(void (*release)(void *), void *obj);
void free_later_stop(void);

#endif
