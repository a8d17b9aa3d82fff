/*
 * Counters. The data path only adds to them; averages, SHOW STATS and metrics
 * are computed from snapshots off the data path.
 */
#ifndef PGWING_STATS_H
#define PGWING_STATS_H

#include "pgwing/common.h"

struct event_base;
struct pool;

/*
 * Upper bounds (microseconds) of the buckets every duration histogram uses,
 * from a fast query to a long hold; one more bucket counts what is over them
 * (+Inf). Fixed bounds make an observation an increment in an array. Here,
 * not in stats.c, so that pure modules (topology) observe without linking it.
 */
#define STATS_BUCKETS 13
static const int64_t stats_bucket_bounds_us[STATS_BUCKETS] = {
	100,    500,     1000,    5000,     10000,    50000,    100000,
	500000, 1000000, 5000000, 10000000, 30000000, 60000000,
};

/* Not cumulative: bucket i counts durations in (bound i-1, bound i]; the last one the rest. */
struct stats_histogram {
	uint64_t buckets[STATS_BUCKETS + 1];
};

/* Count one duration: a few compares, most often ending in the first buckets. */
static inline void stats_observe(struct stats_histogram *h, int64_t us)
{
	size_t i = 0;

	while (i < STATS_BUCKETS && us > stats_bucket_bounds_us[i])
		i++;
	h->buckets[i]++;
}

struct stats {
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t bytes_in;  /* client -> server */
	uint64_t bytes_out; /* server -> client */
	uint64_t xact_time_us;
	uint64_t query_time_us;
	uint64_t wait_time_us; /* clients waiting for a server */
	uint64_t wait_count;   /* waits that ended (served, timed out or gone) */
	/* rw_split: where reads ran, and their waits for a replica to replay the session's writes.
	 */
	uint64_t replica_reads;
	uint64_t primary_reads;      /* reads a replica could not serve (behind, none, full) */
	uint64_t replica_refusals;   /* reads a replica refused (25006), run again on the primary */
	uint64_t catch_up_count;     /* reads that waited for a replica to catch up */
	uint64_t catch_up_time_us;   /* ... for this long in all */
	uint64_t catch_up_fallbacks; /* ... and then ran on the primary */
	/* Checks of a session's state on its server before it gave it back (capture.h). */
	uint64_t state_checks;
	uint64_t state_check_time_us;
	uint64_t state_check_pins; /* ... that found what keeps the session on its server */
	/* Their counts are query_count, xact_count and wait_count; their sums the times above. */
	struct stats_histogram query_hist;
	struct stats_histogram xact_hist;
	struct stats_histogram wait_hist;
};

/* Why clients of a pool wait for a server. */
enum hold_reason {
	HOLD_PAUSED,   /* PAUSE */
	HOLD_FAILOVER, /* no backend can serve the target: no primary, no replica */
	HOLD_WAKE,     /* the backend is being woken up */
	HOLD_FULL,     /* anything else: a server is on its way */
	HOLD_REASON_COUNT,
};

/* Process-wide events, for the metrics endpoint. */
struct stats_events {
	uint64_t failovers;
	uint64_t wakes_ok;
	uint64_t wakes_failed;
	uint64_t holds[HOLD_REASON_COUNT];
	/* Holds that ended (the queue emptied), by the reason they started with. */
	struct stats_histogram hold_hist[HOLD_REASON_COUNT];
	uint64_t hold_time_us[HOLD_REASON_COUNT];
	/* Wakes that succeeded: from the start to the backend answering. */
	struct stats_histogram wake_hist;
	uint64_t wake_time_us;
};

extern struct stats_events stats_events;

/* A client stopped waiting after waited_us: the pool's counters and the histogram. */
void stats_note_wait(struct stats *st, int64_t waited_us);
/* A client started waiting in p's queue: counted by reason. */
void stats_note_hold(const struct pool *p);
/* A pool's hold that started for reason ended after held_us. */
void stats_note_hold_end(enum hold_reason reason, int64_t held_us);
/* A wake succeeded after woken_us. */
void stats_note_wake(int64_t woken_us);
enum hold_reason stats_hold_reason(const struct pool *p);
const char *hold_reason_name(enum hold_reason reason);

/* Averages over the last stats_period. */
struct stats_rates {
	double xacts_per_s;
	double queries_per_s;
	double bytes_in_per_s;
	double bytes_out_per_s;
	uint64_t avg_xact_time_us;  /* per transaction */
	uint64_t avg_query_time_us; /* per query */
	uint64_t avg_wait_time_us;  /* per wait */
};

/* Totals and averages of the pools of one database and target. */
struct stats_row {
	const char *database; /* the pools' (or the retired counters') own string */
	enum target target;
	struct stats total;
	struct stats_rates rates;
};

/* Take a snapshot every stats_period (read at each tick, so a reload applies). */
int stats_start(struct event_base *base);
void stats_stop(void);
/*
 * p is being freed (pool_collect): its counters are kept, summed by database
 * and target as its rows are, so totals never go back. Unless is_kept (it
 * logged in), only when its database and target have a lasting row anyway:
 * the name of a pool that never logged in may be anything a client typed.
 */
void stats_retire_pool(const struct pool *p, bool is_kept);
/* One row per database and target, sorted; free() the array. */
struct stats_row *stats_collect(size_t *count);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void stats_init(const struct runtime *runtime);

#endif
