#include "pgwing/common.h"
#include "pgwing/log.h"

#include <event2/event.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *target_name(enum target target)
{
	return target == TARGET_RW ? "rw" : "ro";
}

static void *check_alloc(void *p, size_t size)
{
	if (p == NULL && size != 0) {
		log_error("out of memory allocating %zu bytes", size);
		abort();
	}
	return p;
}

void *xmalloc(size_t size)
{
	return check_alloc(malloc(size), size);
}

void *xcalloc(size_t n, size_t size)
{
	if (size != 0 && n > SIZE_MAX / size) {
		log_error("out of memory: %zu objects of %zu bytes overflow", n, size);
		abort();
	}
	return check_alloc(calloc(n, size), n * size);
}

void *xrealloc(void *ptr, size_t size)
{
	return check_alloc(realloc(ptr, size), size);
}

void *check_alloc_of(void *p, const char *call)
{
	if (p == NULL) {
		log_error("out of memory: %s failed", call);
		abort();
	}
	return p;
}

char *xstrdup(const char *s)
{
	return check_alloc(strdup(s), strlen(s) + 1);
}

int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void timer_add_ms(struct event *ev, int64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};

	evtimer_add(ev, &tv);
}

/* Objects waiting for the loop to return from the chain that closed them. */
static struct {
	struct event *ev;
	struct {
		void (*release)(void *);
		void *obj;
	} * items;
	size_t count;
	size_t cap;
} later;

/* Releasing one may close another (a client's last server): that one joins the same pass. */
static void free_later_reap(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	for (size_t i = 0; i < later.count; i++)
		later.items[i].release(later.items[i].obj);
	later.count = 0;
	if (later.cap > 64) {
		/* A burst of closes (a failover, a storm) leaves no large array behind. */
		free(later.items);
		later.items = NULL;
		later.cap = 0;
	}
}

bool free_later_start(struct event_base *base)
{
	later.ev = event_new(base, -1, 0, free_later_reap, NULL);
	return later.ev != NULL;
}

void free_later(void (*release)(void *), void *obj)
{
	if (later.count == later.cap) {
		later.cap = later.cap == 0 ? 16 : later.cap * 2;
		later.items = xrealloc(later.items, later.cap * sizeof(*later.items));
	}
	later.items[later.count].release = release;
	later.items[later.count].obj = obj;
	if (later.count++ == 0)
		event_active(later.ev, 0, 0);
}

void free_later_stop(void)
{
	free_later_reap(-1, 0, NULL);
	free(later.items);
	later.items = NULL;
	later.cap = 0;
	if (later.ev != NULL)
		event_free(later.ev);
	later.ev = NULL;
}
