/*
 * The router and topology rules over hand-built topologies: each test sets up
 * backends the way probes would have left them and checks one rule.
 */
#include "pgwing/router.h"
#include "pgwing/topology.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define MAX_BACKENDS 8

struct fixture {
	struct backend backends[MAX_BACKENDS];
	struct backend *ptrs[MAX_BACKENDS];
	struct topology topo;
	struct config cfg;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	f->topo.backends = f->ptrs;
	f->cfg.region = "ams";
	f->cfg.primary_region = ""; /* as the config has it when not set */
	f->cfg.max_replica_lag_ms = 10000;
	f->cfg.ro_fallback = RO_FALLBACK_PRIMARY;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* An up backend as a successful probe leaves it: known RTT, caught-up replica. */
static struct backend *add(struct fixture *f, char *name, char *region, enum backend_role role)
{
	struct backend *b = &f->backends[f->topo.count];

	assert_true(f->topo.count < MAX_BACKENDS);
	b->name = name;
	b->host = "localhost";
	b->port = 5432;
	b->region = region;
	b->role = role;
	b->state = BACKEND_UP;
	b->timeline = 1;
	b->lag_ms = role == ROLE_REPLICA ? 0 : -1;
	b->lag_bytes = -1;
	b->rtt_ms = 1.0;
	f->ptrs[f->topo.count++] = b;
	return b;
}

static struct backend *pick_ro(struct fixture *f)
{
	return router_pick(&f->topo, &f->cfg, TARGET_RO);
}

static struct backend *pick_rw(struct fixture *f)
{
	return router_pick(&f->topo, &f->cfg, TARGET_RW);
}

static void test_rw_goes_to_the_primary(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "ams", ROLE_REPLICA);
	struct backend *p = add(f, "p", "ord", ROLE_PRIMARY);

	assert_ptr_equal(pick_rw(f), p);
}

static void test_rw_without_a_live_primary_is_null(void **state)
{
	struct fixture *f = *state;

	add(f, "r1", "ams", ROLE_REPLICA);
	assert_null(pick_rw(f));

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	p->state = BACKEND_DOWN;
	assert_null(pick_rw(f));
	p->state = BACKEND_UNKNOWN;
	assert_null(pick_rw(f));
	p->state = BACKEND_UP;
	p->is_fenced = true;
	assert_null(pick_rw(f));
}

static void test_ro_prefers_the_same_region_over_a_lower_rtt(void **state)
{
	struct fixture *f = *state;

	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	far->rtt_ms = 0.2;
	near->rtt_ms = 40;

	assert_ptr_equal(pick_ro(f), near);
}

static void test_ro_prefers_the_lowest_rtt_within_a_region(void **state)
{
	struct fixture *f = *state;

	add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *slow = add(f, "slow", "ams", ROLE_REPLICA);
	struct backend *fast = add(f, "fast", "ams", ROLE_REPLICA);
	slow->rtt_ms = 5;
	fast->rtt_ms = 2;
	assert_ptr_equal(pick_ro(f), fast);

	/* Outside the proxy's region the same order holds among the remote replicas. */
	slow->region = "ord";
	fast->region = "syd";
	slow->rtt_ms = 30;
	fast->rtt_ms = 120;
	assert_ptr_equal(pick_ro(f), slow);
}

static void test_ro_without_a_region_orders_by_rtt_only(void **state)
{
	struct fixture *f = *state;

	f->cfg.region = "";
	struct backend *a = add(f, "a", "", ROLE_REPLICA);
	struct backend *b = add(f, "b", "ord", ROLE_REPLICA);
	a->rtt_ms = 9;
	b->rtt_ms = 3;

	assert_ptr_equal(pick_ro(f), b);
}

static void test_ro_unknown_rtt_sorts_last(void **state)
{
	struct fixture *f = *state;

	struct backend *unmeasured = add(f, "unmeasured", "ams", ROLE_REPLICA);
	struct backend *measured = add(f, "measured", "ams", ROLE_REPLICA);
	unmeasured->rtt_ms = -1;
	measured->rtt_ms = 500;
	assert_ptr_equal(pick_ro(f), measured);

	/* ... but region still comes first. */
	measured->region = "ord";
	assert_ptr_equal(pick_ro(f), unmeasured);
}

static void test_ro_excludes_replicas_too_far_behind(void **state)
{
	struct fixture *f = *state;

	struct backend *behind = add(f, "behind", "ams", ROLE_REPLICA);
	struct backend *remote = add(f, "remote", "ord", ROLE_REPLICA);
	behind->lag_ms = 10001;
	assert_ptr_equal(pick_ro(f), remote);

	behind->lag_ms = 10000; /* the limit itself is within it */
	assert_ptr_equal(pick_ro(f), behind);

	/* Unknown lag (no transaction replayed yet) is not proof of being close. */
	behind->lag_ms = -1;
	assert_ptr_equal(pick_ro(f), remote);
}

static void test_ro_max_replica_lag_zero_disables_the_check(void **state)
{
	struct fixture *f = *state;

	f->cfg.max_replica_lag_ms = 0;
	struct backend *behind = add(f, "behind", "ams", ROLE_REPLICA);
	add(f, "remote", "ord", ROLE_REPLICA);
	behind->lag_ms = 3600 * 1000;
	assert_ptr_equal(pick_ro(f), behind);
	behind->lag_ms = -1;
	assert_ptr_equal(pick_ro(f), behind);
}

static void test_ro_excludes_down_unknown_and_fenced(void **state)
{
	struct fixture *f = *state;

	struct backend *down = add(f, "down", "ams", ROLE_REPLICA);
	struct backend *unknown = add(f, "unknown", "ams", ROLE_REPLICA);
	struct backend *fenced = add(f, "fenced", "ams", ROLE_REPLICA);
	struct backend *asleep = add(f, "asleep", "ams", ROLE_REPLICA);
	struct backend *ok = add(f, "ok", "ord", ROLE_REPLICA);
	down->state = BACKEND_DOWN;
	unknown->state = BACKEND_UNKNOWN;
	fenced->is_fenced = true;
	asleep->state = BACKEND_ASLEEP;
	ok->rtt_ms = 80;

	assert_ptr_equal(pick_ro(f), ok);
}

static void test_ro_ties_go_to_the_fewest_clients_then_position(void **state)
{
	struct fixture *f = *state;

	struct backend *a = add(f, "a", "ams", ROLE_REPLICA);
	struct backend *b = add(f, "b", "ams", ROLE_REPLICA);
	a->rtt_ms = 1.0;
	b->rtt_ms = 1.4; /* within 0.5 ms: a tie */
	assert_ptr_equal(pick_ro(f), a);

	a->nclients = 3;
	b->nclients = 2;
	assert_ptr_equal(pick_ro(f), b);

	/* A full tie keeps the first in file order. */
	b->nclients = 3;
	assert_ptr_equal(pick_ro(f), a);

	/* Beyond the tolerance RTT decides, whatever the client counts. */
	a->nclients = 100;
	b->rtt_ms = 1.6;
	assert_ptr_equal(pick_ro(f), a);
}

/* primary_region breaks ties of cost: its replica replays nearest to the primary's WAL. */
static void test_ro_ties_go_to_the_primary_region_first(void **state)
{
	struct fixture *f = *state;

	f->cfg.primary_region = "iad";
	struct backend *ord = add(f, "ord", "ord", ROLE_REPLICA);
	struct backend *iad = add(f, "iad", "iad", ROLE_REPLICA);
	ord->rtt_ms = 80;
	iad->rtt_ms = 85; /* within 10%: the same cost */
	assert_ptr_equal(pick_ro(f), iad);

	/* Before the fewest clients... */
	iad->nclients = 10;
	assert_ptr_equal(pick_ro(f), iad);

	/* ... which still share clients out among replicas of the primary's region. */
	struct backend *iad2 = add(f, "iad2", "iad", ROLE_REPLICA);
	iad2->rtt_ms = 80;
	assert_ptr_equal(pick_ro(f), iad2);

	/* Only ties: a clearly nearer replica, or one in pgwing's own region, comes first. */
	ord->rtt_ms = 20;
	assert_ptr_equal(pick_ro(f), ord);
	struct backend *ams = add(f, "ams", "ams", ROLE_REPLICA);
	ams->rtt_ms = 90;
	assert_ptr_equal(pick_ro(f), ams);

	/* Not set: no region is the primary's, and position decides the tie. */
	f->cfg.primary_region = "";
	ord->rtt_ms = 80;
	ams->state = BACKEND_DOWN;
	iad->nclients = 0;
	assert_ptr_equal(pick_ro(f), ord);
}

static void test_ro_rtt_tolerance_is_relative_for_far_replicas(void **state)
{
	struct fixture *f = *state;

	struct backend *a = add(f, "a", "ord", ROLE_REPLICA);
	struct backend *b = add(f, "b", "ord", ROLE_REPLICA);
	a->rtt_ms = 80;
	b->rtt_ms = 87; /* within 10% of 80 */
	a->nclients = 5;
	assert_ptr_equal(pick_ro(f), b);

	b->rtt_ms = 89; /* beyond it */
	assert_ptr_equal(pick_ro(f), a);
}

static void test_ro_spreads_clients_evenly(void **state)
{
	struct fixture *f = *state;
	int counts[3] = {0};

	for (int i = 0; i < 3; i++)
		add(f, i == 0 ? "a" : i == 1 ? "b" : "c", "ams", ROLE_REPLICA);
	for (int n = 0; n < 30; n++) {
		struct backend *b = pick_ro(f);

		b->nclients++;
		counts[b - f->backends]++;
	}
	assert_int_equal(counts[0], 10);
	assert_int_equal(counts[1], 10);
	assert_int_equal(counts[2], 10);
}

static void test_ro_falls_back_to_the_primary(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ord", ROLE_PRIMARY);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	r->state = BACKEND_DOWN;
	assert_ptr_equal(pick_ro(f), p);

	p->state = BACKEND_DOWN;
	assert_null(pick_ro(f));
}

static void test_ro_fallback_error_never_uses_the_primary(void **state)
{
	struct fixture *f = *state;

	f->cfg.ro_fallback = RO_FALLBACK_ERROR;
	add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	r->lag_ms = 60000;
	assert_null(pick_ro(f));

	r->lag_ms = 0;
	assert_ptr_equal(pick_ro(f), r);
}

/*
 * A suspect backend (up, its latest probe failed) gets no new client: they
 * wait for the verdict, or go to another replica. Those already there stay.
 */
static void test_suspect_backends_get_no_new_clients(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ord", ROLE_PRIMARY);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	assert_ptr_equal(pick_ro(f), near);

	near->consecutive_failures = 1;
	assert_true(backend_is_suspect(near));
	assert_ptr_equal(pick_ro(f), far);
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));
	far->consecutive_failures = 1;
	assert_ptr_equal(pick_ro(f), p);

	p->consecutive_failures = 1;
	assert_null(pick_rw(f));
	assert_null(pick_ro(f));
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RW, p));
	/* Down is no longer suspect, it is the verdict. */
	p->state = BACKEND_DOWN;
	assert_false(backend_is_suspect(p));
}

static void test_two_primaries_higher_timeline_wins(void **state)
{
	struct fixture *f = *state;

	struct backend *old = add(f, "old", "ams", ROLE_PRIMARY);
	struct backend *promoted = add(f, "promoted", "ams", ROLE_PRIMARY);
	promoted->timeline = 2;

	/* Before reconcile decides, two primaries mean no primary. */
	assert_null(pick_rw(f));
	assert_true(topology_reconcile(&f->topo));
	assert_true(old->is_fenced);
	assert_false(promoted->is_fenced);
	assert_false(f->topo.is_primary_ambiguous);
	assert_ptr_equal(pick_rw(f), promoted);
	assert_false(topology_reconcile(&f->topo)); /* nothing new */

	/* The fence holds while the newer primary is down: the old one never takes writes. */
	promoted->state = BACKEND_DOWN;
	assert_false(topology_reconcile(&f->topo));
	assert_true(old->is_fenced);
	assert_null(pick_rw(f));

	/* Rejoined as a replica (pg_rewind), it is no longer a threat. */
	old->role = ROLE_REPLICA;
	old->lag_ms = 0;
	assert_true(topology_reconcile(&f->topo));
	assert_false(old->is_fenced);
	assert_ptr_equal(pick_ro(f), old);
}

static void test_two_primaries_on_one_timeline_take_no_writes(void **state)
{
	struct fixture *f = *state;

	struct backend *a = add(f, "a", "ams", ROLE_PRIMARY);
	struct backend *b = add(f, "b", "ams", ROLE_PRIMARY);
	a->timeline = b->timeline = 3;

	assert_true(topology_reconcile(&f->topo));
	assert_true(f->topo.is_primary_ambiguous);
	assert_false(a->is_fenced);
	assert_false(b->is_fenced);
	assert_null(pick_rw(f));
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RW, a));

	/* Resolved once one of them is gone. */
	b->state = BACKEND_DOWN;
	assert_true(topology_reconcile(&f->topo));
	assert_false(f->topo.is_primary_ambiguous);
	assert_ptr_equal(pick_rw(f), a);
}

static void test_no_writes_until_every_backend_was_probed(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *other = add(f, "other", "ams", ROLE_UNKNOWN);
	other->state = BACKEND_UNKNOWN;
	assert_null(pick_rw(f));

	/* One answer, good or bad, is enough: its timeline is known, or it is unreachable. */
	other->consecutive_failures = 1;
	assert_ptr_equal(pick_rw(f), p);
	other->consecutive_failures = 0;
	other->consecutive_successes = 1;
	other->role = ROLE_REPLICA;
	assert_ptr_equal(pick_rw(f), p);

	/* A sleeping backend is not probed at all, and does not hold writes back. */
	other->consecutive_successes = 0;
	other->state = BACKEND_ASLEEP;
	assert_ptr_equal(pick_rw(f), p);
}

static void test_reconcile_computes_replica_lag_bytes(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *behind = add(f, "behind", "ams", ROLE_REPLICA);
	struct backend *ahead = add(f, "ahead", "ams", ROLE_REPLICA);
	p->lsn = 0x100005000;
	behind->lsn = 0x100001000;
	ahead->lsn = 0x100006000; /* probed after the primary */

	topology_reconcile(&f->topo);
	assert_int_equal(behind->lag_bytes, 0x4000);
	assert_int_equal(ahead->lag_bytes, 0);
	assert_int_equal(p->lag_bytes, 0);

	/* A primary that goes down leaves its last position to be measured against. */
	p->state = BACKEND_DOWN;
	topology_reconcile(&f->topo);
	assert_int_equal(behind->lag_bytes, 0x4000);
}

static void test_reconcile_without_a_primary_lag_is_the_replica_s_own(void **state)
{
	struct fixture *f = *state;

	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	r->lsn = 0x100001000;
	r->replay_lag_ms = 1500;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_bytes, -1);
	assert_int_equal(r->lag_ms, 1500);
}

/*
 * A primary probed at probed_ms at 0x1000 and a replica that has replayed it,
 * probed 10 ms later, reconciled: the replica is caught up. Returns the
 * primary; *replica is the replica.
 */
static struct backend *add_caught_up(struct fixture *f, int64_t probed_ms, struct backend **replica)
{
	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);

	r->replay_lag_ms = 0;
	p->lsn = 0x1000;
	p->probed_ms = probed_ms;
	r->lsn = 0x1000;
	r->probed_ms = probed_ms + 10;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);
	assert_int_equal(r->lag_bytes, 0);
	*replica = r;
	return p;
}

/*
 * The cut-off replica of issue 20: its WAL receiver stopped, it has replayed all
 * it received (its own replay delay says 0), but the primary moved on.
 */
static void test_reconcile_time_lag_counts_from_the_last_catch_up(void **state)
{
	struct fixture *f = *state;
	int64_t t = now_ms();

	struct backend *r;
	/* Caught up with the primary's position probed before its own probe. */
	struct backend *p = add_caught_up(f, t - 5000, &r);

	/* The primary advances; the replica's next probe still shows 0x1000. */
	p->lsn = 0x9000;
	p->probed_ms = t - 4000;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_bytes, 0x8000);
	assert_int_equal(r->lag_ms, 0); /* its probe predates the new position: no proof yet */
	r->probed_ms = t - 3990;
	topology_reconcile(&f->topo);
	/* Behind since the primary was last seen at 0x1000, 5 s ago. */
	assert_in_range(r->lag_ms, 5000, 5000 + 1000);

	/* The time bound applies alone... */
	f->cfg.max_replica_lag_ms = 4000;
	assert_ptr_equal(pick_ro(f), p);
	f->cfg.max_replica_lag_ms = 6000;
	assert_ptr_equal(pick_ro(f), r);
	/* ... and so does the bytes bound. */
	f->cfg.max_replica_lag_bytes = 0x7fff;
	assert_ptr_equal(pick_ro(f), p);
	f->cfg.max_replica_lag_bytes = 0x8000;
	assert_ptr_equal(pick_ro(f), r);

	/* It replays up to the newest position: caught up again. */
	r->lsn = 0x9000;
	r->probed_ms = t;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);
	assert_int_equal(r->lag_bytes, 0);

	/* Its own replay delay counts when it is worse. */
	r->replay_lag_ms = 7000;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 7000);
}

static void test_reconcile_time_lag_unknown_until_a_catch_up(void **state)
{
	struct fixture *f = *state;
	int64_t t = now_ms();

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	p->lsn = 0x9000;
	p->probed_ms = t - 100;
	r->lsn = 0x1000;
	r->probed_ms = t;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, -1);
	assert_ptr_equal(pick_ro(f), p);

	/* A new primary (a failover) starts a new history; a past catch-up still bounds. */
	r->lsn = 0x9000;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);
	struct backend *q = add(f, "q", "ams", ROLE_PRIMARY);
	p->state = BACKEND_DOWN;
	q->lsn = 0xa000;
	q->probed_ms = t - 50;
	topology_reconcile(&f->topo);
	assert_ptr_equal(f->topo.history_of, q);
	assert_int_equal(f->topo.history_count, 1);
	assert_int_equal(r->lag_bytes, 0x1000);
	assert_in_range(r->lag_ms, 100, 100 + 1000);
}

/*
 * Promoted while the old primary runs on (the soak's "running" scenario): a
 * replica still streaming from the old one is on the old timeline, and its
 * LSN passes the new primary's without holding any of its commits.
 */
static void test_reconcile_replica_on_an_older_timeline_falls_behind(void **state)
{
	struct fixture *f = *state;
	int64_t t = now_ms();

	struct backend *r;
	struct backend *p = add_caught_up(f, t - 3000, &r);

	p->timeline = 2;
	p->lsn = 0x2000;
	p->probed_ms = t - 1000;
	r->lsn = 0x9000;
	r->probed_ms = t;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_bytes, -1);
	assert_in_range(r->lag_ms, 3000, 3000 + 1000);
	f->cfg.max_replica_lag_ms = 1000;
	assert_ptr_equal(pick_ro(f), p);

	/* Following the new primary: measured again. */
	r->timeline = 2;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);
	assert_ptr_equal(pick_ro(f), r);
}

/*
 * The restart round of the soak: the primary commits after its last probe and
 * dies; a replica that covers every mark may lack those commits, so it is
 * behind since the primary was last heard, not caught up.
 */
static void test_reconcile_primary_silence_counts_as_lag(void **state)
{
	struct fixture *f = *state;
	int64_t t = now_ms();

	struct backend *r;
	struct backend *p = add_caught_up(f, t - 3000, &r); /* the primary answers */

	/* Its probes fail: suspect, then down. */
	p->consecutive_failures = 1;
	topology_reconcile(&f->topo);
	assert_in_range(r->lag_ms, 3000, 3000 + 1000);
	p->state = BACKEND_DOWN;
	topology_reconcile(&f->topo);
	assert_in_range(r->lag_ms, 3000, 3000 + 1000);
	assert_int_equal(r->lag_bytes, 0);
	f->cfg.max_replica_lag_ms = 2000;
	assert_null(pick_ro(f));
	f->cfg.max_replica_lag_ms = 0; /* the check disabled: any replica */
	assert_ptr_equal(pick_ro(f), r);

	/*
	 * Back at a new position (its restart wrote WAL), probed after the
	 * replica: the mark the replica covers predates the silence, no proof.
	 */
	p->state = BACKEND_UP;
	p->consecutive_failures = 0;
	p->lsn = 0x2000;
	p->probed_ms = t - 5;
	topology_reconcile(&f->topo);
	assert_in_range(r->lag_ms, 3000, 3000 + 1000);

	/* The replica replays it: caught up again. */
	r->lsn = 0x2000;
	r->probed_ms = t;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);

	/* Stopped on purpose (asleep): it commits nothing, the replica is as fresh as it was. */
	p->state = BACKEND_ASLEEP;
	topology_reconcile(&f->topo);
	assert_int_equal(r->lag_ms, 0);
}

static void test_should_move_rw(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RW, p));

	p->state = BACKEND_DOWN;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RW, p));

	/* Demoted, and the replica promoted. */
	p->state = BACKEND_UP;
	p->role = ROLE_REPLICA;
	r->role = ROLE_PRIMARY;
	r->timeline = 2;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RW, p));
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RW, r));

	r->is_fenced = true;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RW, r));
}

static void test_should_move_ro(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);

	/* A replica that still qualifies keeps its clients, even when a nearer one exists. */
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RO, far));
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));

	near->lag_ms = 20000;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));
	near->lag_ms = 0;
	near->state = BACKEND_DOWN;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));
	near->state = BACKEND_UP;
	near->is_fenced = true;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));
	near->is_fenced = false;
	/* Promoted: no longer a replica. */
	near->role = ROLE_PRIMARY;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, near));
	near->role = ROLE_REPLICA;

	/* On the primary as the fallback: stay while no replica qualifies ... */
	near->state = BACKEND_DOWN;
	far->state = BACKEND_DOWN;
	assert_false(router_should_move(&f->topo, &f->cfg, TARGET_RO, p));
	/* ... move once one is back. */
	far->state = BACKEND_UP;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, p));

	/* With ro_fallback = error the primary is never right for a reader. */
	far->state = BACKEND_DOWN;
	f->cfg.ro_fallback = RO_FALLBACK_ERROR;
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, p));
}

static void test_should_move_off_a_removed_backend(void **state)
{
	struct fixture *f = *state;

	add(f, "p", "ams", ROLE_PRIMARY);
	add(f, "r", "ams", ROLE_REPLICA);
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RW, NULL));
	assert_true(router_should_move(&f->topo, &f->cfg, TARGET_RO, NULL));
}

static int nremoved;
static char removed_names[64];

/* Apply cfg as a reload does, noting the backends it drops before freeing them. */
static void apply(struct topology *topo, const struct config *cfg)
{
	struct backend_list removed = topology_apply_config(topo, cfg);

	for (int i = 0; i < removed.count; i++) {
		nremoved++;
		strncat(removed_names, removed.items[i]->name,
			sizeof(removed_names) - strlen(removed_names) - 1);
	}
	topology_free_removed(&removed);
}

static void test_apply_config_keeps_state_of_unchanged_backends(void **state UNUSED)
{
	struct backend_config bcs[3] = {
		{.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = "ams"},
		{.name = "pg2", .host = "10.0.0.2", .port = 5432, .region = "ams"},
		{.name = "pg3", .host = "10.0.0.3", .port = 5432, .region = "ord"},
	};
	struct config cfg = {.backends = bcs, .nbackends = 3};
	struct topology *topo = topology_new(&cfg);
	struct backend *pg1, *pg2;

	assert_int_equal(topo->count, 3);
	/* No role without a probe: nothing is routable yet. */
	for (int i = 0; i < topo->count; i++) {
		assert_int_equal(topo->backends[i]->role, ROLE_UNKNOWN);
		assert_int_equal(topo->backends[i]->state, BACKEND_UNKNOWN);
		assert_true(topo->backends[i]->rtt_ms < 0);
		assert_int_equal(topo->backends[i]->lag_ms, -1);
	}
	assert_null(topology_primary(topo));

	pg1 = topology_find(topo, "pg1");
	pg2 = topology_find(topo, "pg2");
	pg1->state = pg2->state = BACKEND_UP;
	pg1->role = ROLE_PRIMARY;
	pg2->role = ROLE_REPLICA;

	/* pg2 moves, pg3 goes, pg4 arrives first, pg1 only changes region. */
	struct backend_config next[3] = {
		{.name = "pg4", .host = "10.0.0.4", .port = 5432, .region = "ord"},
		{.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = "fra"},
		{.name = "pg2", .host = "10.0.0.2", .port = 6432, .region = "ams"},
	};
	cfg.backends = next;
	apply(topo, &cfg);
	/* The moved pg2 and the dropped pg3 are handed back before they are freed. */
	assert_int_equal(nremoved, 2);
	assert_string_equal(removed_names, "pg2pg3");

	assert_int_equal(topo->count, 3);
	assert_string_equal(topo->backends[0]->name, "pg4");
	assert_ptr_equal(topo->backends[1], pg1);
	assert_int_equal(pg1->state, BACKEND_UP);
	assert_string_equal(pg1->region, "fra");
	assert_int_equal(topology_find(topo, "pg2")->state, BACKEND_UNKNOWN);
	assert_int_equal(topology_find(topo, "pg2")->port, 6432);
	/* pg4 and the moved pg2 have not been heard from: either might be a newer primary. */
	assert_null(topology_primary(topo));
	topology_find(topo, "pg4")->consecutive_failures = 1;
	topology_find(topo, "pg2")->consecutive_failures = 1;
	assert_ptr_equal(topology_primary(topo), pg1);
	assert_null(topology_find(topo, "pg3"));
	topology_free(topo);
}

/* A discovered backend in malloc'ed memory, as topology_set_discovered takes it. */
static void discovered(struct backend_config *list, int i, char *name, char *host, char *region)
{
	struct backend_config bc = {.name = name, .host = host, .port = 5433, .region = region};

	config_copy_backend(&list[i], &bc);
}

static void test_discovered_backends_follow_the_config_ones(void **state UNUSED)
{
	struct backend_config bcs[1] = {
		{.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = "ams"},
	};
	struct config cfg = {.backends = bcs, .nbackends = 1};
	struct topology *topo = topology_new(&cfg);
	struct backend_config *list = calloc(2, sizeof(*list));
	struct backend *m1;

	/* A discovered name the config also has is the config's. */
	discovered(list, 0, "m1", "fdaa::1", "fra");
	discovered(list, 1, "pg1", "fdaa::9", "fra");
	topology_set_discovered(topo, list, 2);
	apply(topo, &cfg);
	assert_int_equal(topo->count, 2);
	assert_string_equal(topo->backends[0]->host, "10.0.0.1");
	m1 = topo->backends[1];
	assert_string_equal(m1->name, "m1");
	assert_int_equal(m1->port, 5433);
	m1->state = BACKEND_UP;

	/* A reload (the same config applied again) keeps it, state and all. */
	apply(topo, &cfg);
	assert_ptr_equal(topology_find(topo, "m1"), m1);
	assert_int_equal(m1->state, BACKEND_UP);

	/* A new region is the same backend; an empty set drops it. */
	list = calloc(1, sizeof(*list));
	discovered(list, 0, "m1", "fdaa::1", "ams");
	topology_set_discovered(topo, list, 1);
	apply(topo, &cfg);
	assert_ptr_equal(topology_find(topo, "m1"), m1);
	assert_string_equal(m1->region, "ams");
	nremoved = 0;
	removed_names[0] = '\0';
	topology_set_discovered(topo, NULL, 0);
	apply(topo, &cfg);
	assert_int_equal(nremoved, 1);
	assert_string_equal(removed_names, "m1");
	assert_int_equal(topo->count, 1);
	topology_free(topo);
}

/* The state machine: what topology makes of health's and wake's reports. */
static int nchanges;
static const struct backend *last_wake_failed;
static bool was_suspect;
static const char *last_wake_error;

static void count_change(const struct topology_change *change)
{
	nchanges++;
	last_wake_failed = change->wake_failed;
	was_suspect = change->is_suspect;
	last_wake_error = change->wake_error;
}

static const struct backend_observation primary_seen = {
	.role = ROLE_PRIMARY, .lsn = 100, .lag_ms = 0, .timeline = 1, .rtt_ms = 2.0};

static struct topology *machine(struct backend_config *bc, int rise, int fail)
{
	struct config cfg = {.backends = bc,
			     .nbackends = 1,
			     .health_rise_count = rise,
			     .health_fail_count = fail};
	struct topology *topo = topology_new(&cfg);

	topo->on_change = count_change;
	nchanges = 0;
	last_wake_failed = NULL;
	last_wake_error = NULL;
	return topo;
}

static void test_up_after_rise_count_successes(void **state UNUSED)
{
	struct backend_config bc = {.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = ""};
	struct topology *topo = machine(&bc, 2, 2);
	struct backend *b = topo->backends[0];
	uint64_t epoch = topo->epoch;

	/* The first answer is news even before the backend is up: it may unblock writes. */
	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(b->state, BACKEND_UNKNOWN);
	assert_int_equal(b->role, ROLE_PRIMARY);
	assert_int_equal(nchanges, 1);
	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(b->state, BACKEND_UP);
	assert_int_equal(nchanges, 2);
	assert_true(topo->epoch > epoch);
	assert_true(b->rtt_ms == 2.0);
	assert_int_equal(b->lsn, 100);
	assert_ptr_equal(topology_primary(topo), b);
	assert_null(last_wake_failed);
	topology_free(topo);
}

/*
 * A primary back from down gets writes only once the others answered a probe
 * sent after its return: it may be an old primary restarted while one of
 * them was promoted.
 */
static void test_returned_primary_waits_for_the_others(void **state UNUSED)
{
	static const struct backend_observation replica_seen = {
		.role = ROLE_REPLICA, .lsn = 100, .lag_ms = 0, .timeline = 1, .rtt_ms = 0.0};
	struct backend_config bc[2] = {
		{.name = "old", .host = "10.0.0.1", .port = 5432, .region = ""},
		{.name = "other", .host = "10.0.0.2", .port = 5432, .region = ""},
	};
	struct config cfg = {
		.backends = bc, .nbackends = 2, .health_rise_count = 1, .health_fail_count = 1};
	struct topology *topo = topology_new(&cfg);
	struct backend *old = topo->backends[0], *other = topo->backends[1];

	topo->on_change = count_change;
	topology_note_probe_ok(topo, old, &primary_seen);
	topology_note_probe_ok(topo, other, &replica_seen);
	assert_ptr_equal(topology_primary(topo), old);
	topology_note_probe_failed(topo, old, "Connection refused", true);
	assert_null(topology_primary(topo));
	topology_note_probe_ok(topo, old, &primary_seen);
	assert_int_equal(old->state, BACKEND_UP);
	assert_true(was_suspect); /* the others are probed at once */
	assert_null(topology_primary(topo));
	nchanges = 0;
	usleep(100); /* a probe sent after the return */
	topology_note_probe_ok(topo, other, &replica_seen);
	assert_ptr_equal(topology_primary(topo), old);
	assert_int_equal(nchanges, 1); /* the waiters are told */
	topology_free(topo);
}

static void test_down_after_fail_count_failures(void **state UNUSED)
{
	struct backend_config bc = {.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = ""};
	struct topology *topo = machine(&bc, 1, 2);
	struct backend *b = topo->backends[0];

	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(b->state, BACKEND_UP);
	nchanges = 0;
	/*
	 * One slow answer does not take it out; but it is the primary's, which
	 * makes every other backend worth a probe now (a promotion may be under
	 * way).
	 */
	topology_note_probe_failed(topo, b, "timed out", false);
	assert_int_equal(b->state, BACKEND_UP);
	assert_int_equal(nchanges, 1);
	assert_true(was_suspect);
	assert_string_equal(b->last_error, "timed out");
	/* Its next answer is the verdict the clients it kept waiting are told of. */
	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(nchanges, 2);
	assert_false(backend_is_suspect(b));
	topology_note_probe_failed(topo, b, "timed out", false);
	assert_int_equal(nchanges, 3);
	topology_note_probe_failed(topo, b, "Connection refused", true);
	assert_int_equal(b->state, BACKEND_DOWN);
	assert_int_equal(nchanges, 4);
	assert_false(was_suspect);
	assert_true(b->rtt_ms < 0);
	assert_null(topology_primary(topo));
	/* Back up: the error goes, and the others are worth a probe (an old primary back?). */
	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(b->state, BACKEND_UP);
	assert_string_equal(b->last_error, "");
	assert_true(was_suspect);
	/* A new timeline: a promotion happened somewhere. */
	{
		struct backend_observation promoted = primary_seen;

		promoted.timeline++;
		nchanges = 0;
		topology_note_probe_ok(topo, b, &promoted);
		assert_int_equal(nchanges, 1);
		assert_true(was_suspect);
		nchanges = 0;
		topology_note_probe_ok(topo, b, &promoted);
		assert_int_equal(nchanges, 0);
	}
	topology_free(topo);
}

static void test_wake_cycle(void **state UNUSED)
{
	struct backend_config bc = {
		.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = "", .wake = "exec:true"};
	struct topology *topo = machine(&bc, 3, 2);
	struct backend *b = topo->backends[0];

	/* Nothing listens at a backend that can be woken: asleep, not down. */
	topology_note_probe_failed(topo, b, "Connection refused", true);
	topology_note_probe_failed(topo, b, "Connection refused", true);
	assert_int_equal(b->state, BACKEND_ASLEEP);
	/* Only an asleep backend starts a wake: the second client shares the first one's. */
	assert_true(topology_note_wake_started(topo, b));
	assert_int_equal(b->state, BACKEND_WAKING);
	assert_false(topology_note_wake_started(topo, b));
	/* Not awake yet is no failure that counts: wake_timeout decides. */
	topology_note_probe_failed(topo, b, "Connection refused", true);
	assert_int_equal(b->state, BACKEND_WAKING);
	/* It timed out: asleep again, and the subscriber hears why. */
	nchanges = 0;
	topology_note_wake_timed_out(topo, b, 3000, "HTTP 500");
	assert_int_equal(b->state, BACKEND_ASLEEP);
	assert_int_equal(nchanges, 1);
	assert_ptr_equal(last_wake_failed, b);
	assert_string_equal(last_wake_error, "HTTP 500");
	/* Woken again: up at its first answer, whatever health_rise_count says. */
	assert_true(topology_note_wake_started(topo, b));
	topology_note_probe_ok(topo, b, &primary_seen);
	assert_int_equal(b->state, BACKEND_UP);
	assert_true(b->last_wake_ms >= 0);
	assert_int_equal(b->unused_since_ms, 0);
	/* The idle sweep found it unused: asleep. */
	topology_note_asleep(topo, b, "no clients for 1000 ms");
	assert_int_equal(b->state, BACKEND_ASLEEP);
	topology_free(topo);
}

static void test_unused_time_counts_from_the_last_server(void **state UNUSED)
{
	struct backend_config bc = {.name = "pg1", .host = "10.0.0.1", .port = 5432, .region = ""};
	struct topology *topo = machine(&bc, 1, 1);
	struct backend *b = topo->backends[0];

	topology_note_server_opened(b);
	assert_int_equal(b->nclients, 1);
	assert_int_equal(topology_note_unused(b, 1000), -1);
	topology_note_server_closed(b);
	assert_int_equal(b->nclients, 0);
	assert_int_equal(topology_note_unused(b, 2000), 0);
	assert_int_equal(topology_note_unused(b, 2500), 500);
	topology_free(topo);
}

static void test_names(void **state UNUSED)
{
	assert_string_equal(backend_role_name(ROLE_PRIMARY), "primary");
	assert_string_equal(backend_role_name(ROLE_REPLICA), "replica");
	assert_string_equal(backend_role_name(ROLE_UNKNOWN), "unknown");
	assert_string_equal(backend_state_name(BACKEND_UP), "up");
	assert_string_equal(backend_state_name(BACKEND_DOWN), "down");
	assert_string_equal(backend_state_name(BACKEND_UNKNOWN), "unknown");
	assert_string_equal(backend_state_name(BACKEND_ASLEEP), "asleep");
	assert_string_equal(backend_state_name(BACKEND_WAKING), "waking");
}

static struct backend *wakeable(struct fixture *f, enum target target)
{
	return router_pick_wakeable(&f->topo, &f->cfg, target);
}

static void test_wake_the_sleeping_primary_only_without_a_live_one(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *down = add(f, "down", "ams", ROLE_PRIMARY);
	down->state = BACKEND_DOWN;
	assert_null(wakeable(f, TARGET_RW));

	p->state = BACKEND_ASLEEP;
	assert_ptr_equal(wakeable(f, TARGET_RW), p);
	/* A wake under way is still the one to wait for (wake_backend coalesces). */
	p->state = BACKEND_WAKING;
	assert_ptr_equal(wakeable(f, TARGET_RW), p);
	p->is_fenced = true;
	assert_null(wakeable(f, TARGET_RW));
}

static void test_wake_prefers_a_known_role_over_an_unknown_one(void **state)
{
	struct fixture *f = *state;

	struct backend *never_up = add(f, "never_up", "ams", ROLE_UNKNOWN);
	struct backend *r = add(f, "r", "ams", ROLE_REPLICA);
	never_up->state = BACKEND_ASLEEP;
	r->state = BACKEND_ASLEEP;

	assert_ptr_equal(wakeable(f, TARGET_RW), never_up);
	assert_ptr_equal(wakeable(f, TARGET_RO), r);
}

static void test_wake_for_reads(void **state)
{
	struct fixture *f = *state;

	add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *up = add(f, "up", "ord", ROLE_REPLICA);
	far->state = BACKEND_ASLEEP;
	near->state = BACKEND_ASLEEP;

	f->cfg.wake_for_reads = WAKE_FOR_READS_NEAREST;
	assert_null(wakeable(f, TARGET_RO)); /* "up" serves */
	up->lag_ms = 20000;                  /* too far behind to count */
	assert_ptr_equal(wakeable(f, TARGET_RO), near);
	f->cfg.wake_for_reads = WAKE_FOR_READS_NEVER;
	assert_null(wakeable(f, TARGET_RO));
	f->cfg.wake_for_reads = WAKE_FOR_READS_ALWAYS;
	up->lag_ms = 0;
	assert_ptr_equal(wakeable(f, TARGET_RO), near);
}

static void test_wake_for_reads_falls_back_to_the_primary(void **state)
{
	struct fixture *f = *state;

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	p->state = BACKEND_ASLEEP;

	assert_ptr_equal(wakeable(f, TARGET_RO), p);
	f->cfg.ro_fallback = RO_FALLBACK_ERROR;
	assert_null(wakeable(f, TARGET_RO));
}

/* router_pick_caught_up for a session whose reads need floor gives want, is_behind as said. */
static void assert_caught_up(struct fixture *f, const struct read_floor *floor,
			     const struct backend *current, const struct backend *want,
			     bool want_behind)
{
	bool is_behind = !want_behind; /* so that a result left unset shows */

	assert_ptr_equal(router_pick_caught_up(&f->topo, &f->cfg, floor, current, &is_behind),
			 want);
	assert_int_equal(is_behind, want_behind);
}

/*
 * A replica serves a session's reads once it has replayed the session's
 * min_lsn; while one would serve but has not yet, the session may wait for
 * it (is_behind). The primary is never the answer: the caller sends the
 * read there itself.
 */
static void test_caught_up_min_lsn(void **state)
{
	struct fixture *f = *state;
	struct read_floor floor = {.min_lsn = 0x3000060, .now_ms = 100000};

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	p->lsn = 0x4000000;
	near->lsn = 0x3000060; /* exactly the floor: replayed it */
	far->lsn = 0x3000060;
	assert_caught_up(f, &floor, NULL, near, false);

	/* The nearer one behind: the farther one that replayed it serves. */
	near->lsn = 0x300005f;
	assert_caught_up(f, &floor, NULL, far, false);

	/* Both behind: none, worth waiting for. */
	far->lsn = 0x2000000;
	assert_caught_up(f, &floor, NULL, NULL, true);
	/* Not the primary either, even as the session's current server. */
	assert_caught_up(f, &floor, p, NULL, true);

	/* No replica up: none, and nothing to wait for. */
	near->role = ROLE_PRIMARY;
	far->state = BACKEND_DOWN;
	near->state = BACKEND_DOWN;
	assert_caught_up(f, &floor, NULL, NULL, false);

	/* No floor: any replica router_pick would give. */
	near->role = ROLE_REPLICA;
	near->state = BACKEND_UP;
	floor.min_lsn = 0;
	near->lsn = 0;
	assert_caught_up(f, &floor, NULL, near, false);
	assert_ptr_equal(pick_ro(f), near);
}

/* The replica serving the session keeps it while it qualifies, even when another is nearer. */
static void test_caught_up_keeps_the_current_replica(void **state)
{
	struct fixture *f = *state;
	struct read_floor floor = {.min_lsn = 0x1000, .now_ms = 100000};

	add(f, "p", "ams", ROLE_PRIMARY)->lsn = 0x2000;
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	near->lsn = 0x2000;
	far->lsn = 0x1000;
	assert_caught_up(f, &floor, far, far, false);
	/* Also when a replica before it in the list is behind. */
	near->lsn = 0x10;
	assert_caught_up(f, &floor, far, far, false);

	/* Behind, it gives way to one that is not. */
	near->lsn = 0x2000;
	far->lsn = 0xfff;
	assert_caught_up(f, &floor, far, near, false);
	/* Disqualified otherwise (suspect), too. */
	far->lsn = 0x2000;
	far->consecutive_failures = 1;
	assert_caught_up(f, &floor, far, near, false);
}

/*
 * Replicas that router_pick would not give a read-only client (suspect, down,
 * fenced, past max_replica_lag) are never picked, however far they replayed,
 * and are nothing to wait for: is_behind only counts one that would serve.
 */
static void test_caught_up_skips_unfit_replicas(void **state)
{
	struct fixture *f = *state;
	struct read_floor floor = {.min_lsn = 0x1000, .now_ms = 100000};

	struct backend *p = add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *suspect = add(f, "suspect", "ams", ROLE_REPLICA);
	struct backend *down = add(f, "down", "ams", ROLE_REPLICA);
	struct backend *fenced = add(f, "fenced", "ams", ROLE_REPLICA);
	struct backend *lagging = add(f, "lagging", "ams", ROLE_REPLICA);
	p->lsn = 0x2000;
	suspect->consecutive_failures = 1;
	down->state = BACKEND_DOWN;
	fenced->is_fenced = true;
	lagging->lag_ms = f->cfg.max_replica_lag_ms + 1;

	/* Each is ahead of the floor: still none of them. */
	for (int i = 1; i < f->topo.count; i++)
		f->ptrs[i]->lsn = 0x2000;
	assert_caught_up(f, &floor, NULL, NULL, false);
	assert_caught_up(f, &floor, suspect, NULL, false);
	assert_caught_up(f, &floor, lagging, NULL, false);

	/* Each is behind it: still nothing to wait for. */
	for (int i = 1; i < f->topo.count; i++)
		f->ptrs[i]->lsn = 0x10;
	assert_caught_up(f, &floor, NULL, NULL, false);

	/* A fit one behind them is worth waiting for; caught up, it serves. */
	struct backend *fit = add(f, "fit", "ord", ROLE_REPLICA);
	fit->lsn = 0x10;
	assert_caught_up(f, &floor, NULL, NULL, true);
	fit->lsn = 0x1000;
	assert_caught_up(f, &floor, NULL, fit, false);
}

/*
 * pgwing.max_staleness: the replica caught up with the primary within that
 * long before now. When it last did is unknown (caught_up_ms 0) it meets no
 * bound; with no bound (0) it need not be known.
 */
static void test_caught_up_max_staleness(void **state)
{
	struct fixture *f = *state;
	struct read_floor floor = {.max_staleness_ms = 5000, .now_ms = 100000};

	add(f, "p", "ams", ROLE_PRIMARY);
	struct backend *near = add(f, "near", "ams", ROLE_REPLICA);
	struct backend *far = add(f, "far", "ord", ROLE_REPLICA);
	near->caught_up_ms = 95000; /* exactly max_staleness ago */
	far->caught_up_ms = 99000;
	assert_caught_up(f, &floor, NULL, near, false);

	near->caught_up_ms = 94999;
	assert_caught_up(f, &floor, NULL, far, false);

	far->caught_up_ms = 0; /* never seen caught up */
	assert_caught_up(f, &floor, NULL, NULL, true);
	/* Not even while the clock is younger than the bound. */
	floor.now_ms = 3000;
	near->caught_up_ms = 0;
	assert_caught_up(f, &floor, NULL, NULL, true);
	floor.now_ms = 100000;

	/* No bound: the unknown one is fine. */
	floor.max_staleness_ms = 0;
	near->caught_up_ms = 0;
	assert_caught_up(f, &floor, NULL, near, false);

	/* Both parts of the floor must hold. */
	floor.max_staleness_ms = 5000;
	floor.min_lsn = 0x1000;
	near->caught_up_ms = 99000;
	near->lsn = 0xfff;
	far->caught_up_ms = 90000;
	far->lsn = 0x1000;
	assert_caught_up(f, &floor, NULL, NULL, true);
	near->lsn = 0x1000;
	assert_caught_up(f, &floor, NULL, near, false);
}

#define ROUTER_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		ROUTER_TEST(test_rw_goes_to_the_primary),
		ROUTER_TEST(test_rw_without_a_live_primary_is_null),
		ROUTER_TEST(test_ro_prefers_the_same_region_over_a_lower_rtt),
		ROUTER_TEST(test_ro_prefers_the_lowest_rtt_within_a_region),
		ROUTER_TEST(test_ro_without_a_region_orders_by_rtt_only),
		ROUTER_TEST(test_ro_unknown_rtt_sorts_last),
		ROUTER_TEST(test_ro_excludes_replicas_too_far_behind),
		ROUTER_TEST(test_ro_max_replica_lag_zero_disables_the_check),
		ROUTER_TEST(test_ro_excludes_down_unknown_and_fenced),
		ROUTER_TEST(test_ro_ties_go_to_the_fewest_clients_then_position),
		ROUTER_TEST(test_ro_ties_go_to_the_primary_region_first),
		ROUTER_TEST(test_ro_rtt_tolerance_is_relative_for_far_replicas),
		ROUTER_TEST(test_ro_spreads_clients_evenly),
		ROUTER_TEST(test_ro_falls_back_to_the_primary),
		ROUTER_TEST(test_ro_fallback_error_never_uses_the_primary),
		ROUTER_TEST(test_suspect_backends_get_no_new_clients),
		ROUTER_TEST(test_two_primaries_higher_timeline_wins),
		ROUTER_TEST(test_two_primaries_on_one_timeline_take_no_writes),
		ROUTER_TEST(test_no_writes_until_every_backend_was_probed),
		ROUTER_TEST(test_reconcile_computes_replica_lag_bytes),
		ROUTER_TEST(test_reconcile_without_a_primary_lag_is_the_replica_s_own),
		ROUTER_TEST(test_reconcile_time_lag_counts_from_the_last_catch_up),
		ROUTER_TEST(test_reconcile_time_lag_unknown_until_a_catch_up),
		ROUTER_TEST(test_reconcile_primary_silence_counts_as_lag),
		ROUTER_TEST(test_reconcile_replica_on_an_older_timeline_falls_behind),
		ROUTER_TEST(test_should_move_rw),
		ROUTER_TEST(test_should_move_ro),
		ROUTER_TEST(test_should_move_off_a_removed_backend),
		ROUTER_TEST(test_wake_the_sleeping_primary_only_without_a_live_one),
		ROUTER_TEST(test_wake_prefers_a_known_role_over_an_unknown_one),
		ROUTER_TEST(test_wake_for_reads),
		ROUTER_TEST(test_wake_for_reads_falls_back_to_the_primary),
		ROUTER_TEST(test_caught_up_min_lsn),
		ROUTER_TEST(test_caught_up_keeps_the_current_replica),
		ROUTER_TEST(test_caught_up_skips_unfit_replicas),
		ROUTER_TEST(test_caught_up_max_staleness),
		cmocka_unit_test(test_apply_config_keeps_state_of_unchanged_backends),
		cmocka_unit_test(test_discovered_backends_follow_the_config_ones),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_up_after_rise_count_successes),
		cmocka_unit_test(test_down_after_fail_count_failures),
		cmocka_unit_test(test_returned_primary_waits_for_the_others),
		cmocka_unit_test(test_wake_cycle),
		cmocka_unit_test(test_unused_time_counts_from_the_last_server),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
