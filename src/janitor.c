/*
 * The janitor: periodic sweeps that belong to no connection.
 *
 * - Every quarter of server_idle_timeout (100 ms to 1 s): pooled servers idle
 *   that long or older than server_lifetime are closed
 *   (pool_close_idle_servers), sessions idle that long give their servers
 *   back (link_release_timed_out); pools nobody can reach are freed
 *   (pool_collect); a backend with wake= that has had no server connection
 *   for server_idle_timeout stops being probed and is asleep, so it can stop.
 * - Every TRIM_CHECK_MS, where glibc allows: free heap is given back.
 */
#include "pgwing/janitor.h"

#include "pgwing/health.h"
#include "pgwing/link.h"
#include "pgwing/pool.h"

#include <event2/event.h>

#include <stdio.h>
#if defined(HAVE_MALLOC_TRIM) && defined(HAVE_MALLINFO2)
#include <malloc.h>
#endif

/* Idle servers and unused backends are looked for this often, at most. */
#define SWEEP_MAX_MS 1000
#define SWEEP_MIN_MS 100

/* How often to look whether malloc holds more free memory than it hands out. */
#define TRIM_CHECK_MS 2000

static struct {
	struct topology *topo;
	const struct config *cfg;
	struct event *sweep_timer;
	struct event *trim_timer;
} janitor;

/*
 * Let backends that have had no server connection for server_idle_timeout
 * sleep: their probe goes too (unless probe_sleeping), so they can stop.
 */
static void sleep_unused(void)
{
	const struct config *cfg = janitor.cfg;
	int64_t now = now_ms();

	for (int i = 0; i < janitor.topo->count; i++) {
		struct backend *b = janitor.topo->backends[i];
		int64_t unused_ms = topology_note_unused(b, now);
		char why[64];

		/*
		 * Without wake= a backend that stopped could not be started again, so
		 * it is not ours to put to sleep; probe_sleeping keeps its probe.
		 */
		if (unused_ms < 0 || !b->can_wake || cfg->probe_sleeping ||
		    b->state != BACKEND_UP || cfg->server_idle_timeout_ms <= 0 ||
		    unused_ms < cfg->server_idle_timeout_ms)
			continue;
		/* Mid-probe: the next sweep tries again. */
		if (!health_stop_probing(b))
			continue;
		snprintf(why, sizeof(why), "no clients for %" PRId64 " ms",
			 cfg->server_idle_timeout_ms);
		topology_note_asleep(janitor.topo, b, why);
	}
}

/* A quarter of server_idle_timeout, so an idle server is closed at most 25% late. */
static void sweep_schedule(void)
{
	int64_t ms = janitor.cfg->server_idle_timeout_ms / 4;

	if (ms > SWEEP_MAX_MS || ms == 0)
		ms = SWEEP_MAX_MS;
	if (ms < SWEEP_MIN_MS)
		ms = SWEEP_MIN_MS;
	timer_add_ms(janitor.sweep_timer, ms);
}

static void on_sweep(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	pool_close_idle_servers();
	link_release_timed_out();
	pool_collect();
	sleep_unused();
	sweep_schedule();
}

#if defined(HAVE_MALLOC_TRIM) && defined(HAVE_MALLINFO2)
/*
 * When a crowd of clients leaves, the memory of their buffers stays in malloc's
 * heap, pinned there by whatever was allocated after it (a pooled server, a
 * later client), and RSS stays at the peak. Once more of the heap is free than
 * in use, give the free pages back. Pages given back before cost only a walk
 * over the free chunks, which a heap that big in free space has few of.
 */
static void on_trim(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	struct mallinfo2 mi = mallinfo2();

	if (mi.fordblks > mi.uordblks)
		malloc_trim(0);
}

static void trim_start(struct event_base *base)
{
	janitor.trim_timer = CHECK_ALLOC(event_new(base, -1, EV_PERSIST, on_trim, NULL));
	timer_add_ms(janitor.trim_timer, TRIM_CHECK_MS);
}
#else
static void trim_start(struct event_base *base UNUSED)
{
}
#endif

void janitor_start(struct event_base *base, struct topology *topo, const struct config *cfg)
{
	janitor.topo = topo;
	janitor.cfg = cfg;
	janitor.sweep_timer = CHECK_ALLOC(evtimer_new(base, on_sweep, NULL));
	sweep_schedule();
	trim_start(base);
}

void janitor_reconfigure(const struct config *cfg)
{
	janitor.cfg = cfg;
}

void janitor_stop(void)
{
	if (janitor.sweep_timer != NULL) {
		event_free(janitor.sweep_timer);
		janitor.sweep_timer = NULL;
	}
	if (janitor.trim_timer != NULL) {
		event_free(janitor.trim_timer);
		janitor.trim_timer = NULL;
	}
}
