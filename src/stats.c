/*
 * Statistics off the data path: a timer takes a snapshot of the pools'
 * counters every stats_period and turns the difference into per-second
 * averages, as PgBouncer's stats_period does. Readers (SHOW STATS, metrics)
 * sum the live counters and pick up the averages of the last period.
 */
#include "pgwing/stats.h"

#include "pgwing/config.h"
#include "pgwing/log.h"
#include "pgwing/pool.h"
#include "pgwing/router.h"
#include "pgwing/runtime.h"

#include <event2/event.h>

#include <stdlib.h>
#include <string.h>

/* The process state, given by the runtime at start (stats_init): read, never written. */
static const struct runtime *rt;

void stats_init(const struct runtime *runtime)
{
	rt = runtime;
}

struct stats_events stats_events;

/* What the previous snapshot saw of one database and target, and the averages since. */
struct snapshot {
	char *database;
	enum target target;
	struct stats last;
	struct stats_rates rates;
};

static struct snapshot *snapshots;
static size_t nsnapshots;

/* The counters of pools that were collected, by database and target; owns database. */
static struct stats_row *retired;
static size_t nretired;
static int64_t snapshot_us;
static struct event *snapshot_timer;

static const char *const hold_reason_names[HOLD_REASON_COUNT] = {
	[HOLD_PAUSED] = "paused",
	[HOLD_FAILOVER] = "failover",
	[HOLD_WAKE] = "wake",
	[HOLD_FULL] = "full",
};

const char *hold_reason_name(enum hold_reason reason)
{
	return hold_reason_names[reason];
}

enum hold_reason stats_hold_reason(const struct pool *p)
{
	if (pool_is_paused(p))
		return HOLD_PAUSED;
	/* Nowhere to route to: the primary (or every replica and fallback) is gone. */
	if (router_pick(rt->topo, rt->cfg, p->target) == NULL)
		return router_pick_wakeable(rt->topo, rt->cfg, p->target) != NULL ? HOLD_WAKE
										  : HOLD_FAILOVER;
	return HOLD_FULL;
}

void stats_note_hold(const struct pool *p)
{
	stats_events.holds[stats_hold_reason(p)]++;
}

void stats_note_hold_end(enum hold_reason reason, int64_t held_us)
{
	stats_events.hold_time_us[reason] += (uint64_t)held_us;
	stats_observe(&stats_events.hold_hist[reason], held_us);
}

void stats_note_wake(int64_t woken_us)
{
	stats_events.wake_time_us += (uint64_t)woken_us;
	stats_observe(&stats_events.wake_hist, woken_us);
}

void stats_note_wait(struct stats *st, int64_t waited_us)
{
	st->wait_time_us += (uint64_t)waited_us;
	st->wait_count++;
	stats_observe(&st->wait_hist, waited_us);
}

static void histogram_add(struct stats_histogram *to, const struct stats_histogram *from)
{
	for (size_t i = 0; i <= STATS_BUCKETS; i++)
		to->buckets[i] += from->buckets[i];
}

static void stats_add(struct stats *to, const struct stats *from)
{
	to->xact_count += from->xact_count;
	to->query_count += from->query_count;
	to->bytes_in += from->bytes_in;
	to->bytes_out += from->bytes_out;
	to->xact_time_us += from->xact_time_us;
	to->query_time_us += from->query_time_us;
	to->wait_time_us += from->wait_time_us;
	to->wait_count += from->wait_count;
	to->replica_reads += from->replica_reads;
	to->primary_reads += from->primary_reads;
	to->replica_refusals += from->replica_refusals;
	to->catch_up_count += from->catch_up_count;
	to->catch_up_time_us += from->catch_up_time_us;
	to->catch_up_fallbacks += from->catch_up_fallbacks;
	to->state_checks += from->state_checks;
	to->state_check_time_us += from->state_check_time_us;
	to->state_check_pins += from->state_check_pins;
	histogram_add(&to->query_hist, &from->query_hist);
	histogram_add(&to->xact_hist, &from->xact_hist);
	histogram_add(&to->wait_hist, &from->wait_hist);
}

static int row_cmp(const void *a, const void *b)
{
	const struct stats_row *ra = a, *rb = b;
	int cmp = strcmp(ra->database, rb->database);

	return cmp != 0 ? cmp : (int)ra->target - (int)rb->target;
}

/* The row of rows[0 .. *n) for database and target, appended (zeroed) if there is none. */
static struct stats_row *row_get(struct stats_row **rows, size_t *n, const char *database,
				 enum target target)
{
	for (size_t i = 0; i < *n; i++)
		if ((*rows)[i].target == target && strcmp((*rows)[i].database, database) == 0)
			return &(*rows)[i];
	*rows = xrealloc(*rows, (*n + 1) * sizeof(**rows));
	(*rows)[*n] = (struct stats_row){.database = database, .target = target};
	return &(*rows)[(*n)++];
}

/*
 * Whether p's database and target have a row that lasts: kept counters, or a
 * pool that logged in (whose counters will be kept). Only a database the
 * backend accepted can have one, so retired rows stay as few as those.
 */
static bool has_lasting_row(const struct pool *p)
{
	for (size_t i = 0; i < nretired; i++)
		if (retired[i].target == p->target && strcmp(retired[i].database, p->database) == 0)
			return true;
	for (const struct pool *q = pool_first(); q != NULL; q = q->next)
		if (q != p && q->welcome != NULL && q->target == p->target &&
		    strcmp(q->database, p->database) == 0)
			return true;
	return false;
}

void stats_retire_pool(const struct pool *p, bool is_kept)
{
	struct stats_row *row;

	if (!is_kept && !has_lasting_row(p))
		return;
	row = row_get(&retired, &nretired, p->database, p->target);
	if (row->database == p->database)
		row->database = xstrdup(p->database); /* the pool's string goes with it */
	stats_add(&row->total, &p->stats);
}

/*
 * The pools' counters summed by database and target (users are folded
 * together), with those of the pools collected.
 */
static struct stats_row *sum_pools(size_t *count)
{
	struct stats_row *rows = NULL;
	size_t n = 0;

	for (size_t i = 0; i < nretired; i++)
		*row_get(&rows, &n, retired[i].database, retired[i].target) = retired[i];
	for (const struct pool *p = pool_first(); p != NULL; p = p->next)
		stats_add(&row_get(&rows, &n, p->database, p->target)->total, &p->stats);
	*count = n;
	return rows;
}

static struct snapshot *snapshot_find(const char *database, enum target target, bool is_create)
{
	for (size_t i = 0; i < nsnapshots; i++)
		if (snapshots[i].target == target && strcmp(snapshots[i].database, database) == 0)
			return &snapshots[i];
	if (!is_create)
		return NULL;
	snapshots = xrealloc(snapshots, (nsnapshots + 1) * sizeof(*snapshots));
	snapshots[nsnapshots] = (struct snapshot){.database = xstrdup(database), .target = target};
	return &snapshots[nsnapshots++];
}

static uint64_t per_item(uint64_t time_us, uint64_t items)
{
	return items > 0 ? time_us / items : 0;
}

static void snapshot_take(struct snapshot *s, const struct stats *now, double seconds)
{
	const struct stats *was = &s->last;
	uint64_t xacts = now->xact_count - was->xact_count;
	uint64_t queries = now->query_count - was->query_count;

	s->rates = (struct stats_rates){
		.xacts_per_s = (double)xacts / seconds,
		.queries_per_s = (double)queries / seconds,
		.bytes_in_per_s = (double)(now->bytes_in - was->bytes_in) / seconds,
		.bytes_out_per_s = (double)(now->bytes_out - was->bytes_out) / seconds,
		.avg_xact_time_us = per_item(now->xact_time_us - was->xact_time_us, xacts),
		.avg_query_time_us = per_item(now->query_time_us - was->query_time_us, queries),
		.avg_wait_time_us = per_item(now->wait_time_us - was->wait_time_us,
					     now->wait_count - was->wait_count),
	};
	s->last = *now;
}

static void snapshot_schedule(void)
{
	timer_add_ms(snapshot_timer, rt->cfg->stats_period_ms);
}

static void snapshot_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	int64_t now = now_us();
	double seconds = (double)(now - snapshot_us) / 1e6;
	size_t n, kept = 0;
	struct stats_row *rows = sum_pools(&n);

	for (size_t i = 0; i < n; i++)
		snapshot_find(rows[i].database, rows[i].target, true);
	/*
	 * A snapshot without a row is of pools collected with nothing to keep
	 * (they never logged in): it goes too, or naming databases would fill
	 * this list instead.
	 */
	for (size_t i = 0; i < nsnapshots; i++) {
		size_t j;

		for (j = 0; j < n; j++)
			if (rows[j].target == snapshots[i].target &&
			    strcmp(rows[j].database, snapshots[i].database) == 0)
				break;
		if (j == n) {
			free(snapshots[i].database);
			continue;
		}
		snapshot_take(&snapshots[i], &rows[j].total, seconds > 0 ? seconds : 1);
		snapshots[kept++] = snapshots[i];
	}
	nsnapshots = kept;
	free(rows);
	snapshot_us = now;
	snapshot_schedule();
}

int stats_start(struct event_base *base)
{
	snapshot_timer = CHECK_ALLOC(evtimer_new(base, snapshot_cb, NULL));
	if (snapshot_timer == NULL) {
		log_error("could not create the statistics timer");
		return -1;
	}
	snapshot_us = now_us();
	snapshot_schedule();
	return 0;
}

void stats_stop(void)
{
	if (snapshot_timer != NULL)
		event_free(snapshot_timer);
	snapshot_timer = NULL;
	for (size_t i = 0; i < nsnapshots; i++)
		free(snapshots[i].database);
	free(snapshots);
	snapshots = NULL;
	nsnapshots = 0;
	for (size_t i = 0; i < nretired; i++)
		free((char *)retired[i].database);
	free(retired);
	retired = NULL;
	nretired = 0;
}

struct stats_row *stats_collect(size_t *count)
{
	struct stats_row *rows = sum_pools(count);

	for (size_t i = 0; i < *count; i++) {
		const struct snapshot *s = snapshot_find(rows[i].database, rows[i].target, false);

		if (s != NULL)
			rows[i].rates = s->rates;
	}
	/* Before the first pool there are no rows, and qsort() wants an array even for none. */
	if (*count > 1)
		qsort(rows, *count, sizeof(*rows), row_cmp);
	return rows;
}
