/*
 * Counters. The data path only adds to them; averages, SHOW STATS and metrics
 * are computed from snapshots off the data path.
 */
#ifndef PGWING_STATS_H
#define PGWING_STATS_H

#include "pgwing/common.h"

struct stats {
	uint64_t xact_count;
	uint64_t query_count;
	uint64_t bytes_in;  /* client -> server */
	uint64_t bytes_out; /* server -> client */
	uint64_t xact_time_us;
	uint64_t query_time_us;
	uint64_t wait_time_us; /* clients waiting for a server */
};

#endif
