/*
 * Backends from DNS. A round looks up every discover= line; when all its
 * lookups are back, the sets found replace the last known ones, and if the
 * union changed it goes to the topology and is applied like a reload. A line
 * whose lookup failed (or found nothing) keeps its last known set: a DNS
 * outage must never empty the backend list, and is logged once, not per
 * round. Nothing here blocks: addresses go through evdns, and Fly's TXT
 * machine lists (evdns has no TXT query) through one non-blocking UDP socket
 * per query on the loop.
 */
#include "pgwing/discovery.h"
#include "pgwing/discovery_parse.h"
#include "pgwing/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

/* Machines one fly: line may list; a TXT answer of 4096 bytes holds fewer. */
#define FLY_MAX_MACHINES 256
#define TXT_MAX          8192

struct source {
	char *source; /* "fly:<app>" or "dns:<name>": the discover= line */
	const char *name;
	bool is_fly;
	char *regions;
	struct backend_config tmpl;

	struct backend_config *known; /* the last set found */
	int nknown;
	bool is_failing; /* logged as failing; quiet until it recovers */

	/* The round in flight. */
	const char *failure; /* why this round found nothing usable; NULL: fine so far */
	struct backend_config *found;
	int nfound;
	char *txt[2]; /* fly: vms (started machines) and all.vms answers */
	int ntxt_pending;
};

struct txt_query {
	struct source *src;
	int which; /* index into src->txt */
	evutil_socket_t fd;
	struct event *ev;
	uint16_t id;
	struct txt_query *next; /* in disc.txt_queries */
};

struct addr_lookup {
	struct source *src;
	char *name; /* of the backend */
	char *region;
	bool is_optional; /* a failure skips it instead of failing the source */
	struct evdns_getaddrinfo_request *req;
	bool is_cancelled;
	struct addr_lookup *next; /* in disc.addr_lookups */
};

static struct {
	struct event_base *base;
	struct evdns_base *dns;
	struct topology *topo;
	const struct config *cfg;
	void (*apply)(void);
	struct event *timer;
	struct event *deadline; /* of the round in flight */
	struct source *sources;
	int nsources;
	int pending;            /* lookups in flight; 0: no round */
	bool is_config_changed; /* rebuild the sources before the next round */
	bool is_again;          /* a round was asked for while one was in flight */
	int ndown;              /* backends down after the last topology change */
	/* In flight, so that stopping can end them. */
	struct txt_query *txt_queries;
	struct addr_lookup *addr_lookups;
	bool is_stopping;
} disc;

/* Unlink item from the list at *head (a struct with a next field). */
#define LIST_UNLINK(head, item)                                                       \
	do {                                                                          \
		for (__typeof__(item) *pp = (head); *pp != NULL; pp = &(*pp)->next) { \
			if (*pp == (item)) {                                          \
				*pp = (item)->next;                                   \
				break;                                                \
			}                                                             \
		}                                                                     \
	} while (0)

static void round_done_one(void);

struct evdns_base *discovery_new_resolver(struct event_base *base, const struct config *cfg)
{
	struct evdns_base *dns;

	if (cfg->dns_nameserver[0] == '\0') {
		dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if (dns == NULL)
			log_warn("no DNS resolver configured: backends must be given by address");
		return dns;
	}
	dns = CHECK_ALLOC(evdns_base_new(base, 0));
	if (evdns_base_nameserver_ip_add(dns, cfg->dns_nameserver) != 0) {
		log_error("dns_nameserver %s: not an address[:port]", cfg->dns_nameserver);
		evdns_base_free(dns, 0);
		return NULL;
	}
	return dns;
}

/*
 * How a found backend wakes: as the line says, except on a fly: line, where a
 * machine wakes through the Machines API unless the line says otherwise (wake=
 * with a command or URL, or none). NULL: it cannot be woken.
 */
static char *found_wake(const struct source *src, const char *machine)
{
	const char *wake = src->tmpl.wake;
	char *spec;
	size_t len;

	if (wake != NULL && strcmp(wake, "none") == 0)
		return NULL;
	if (!src->is_fly || (wake != NULL && strcmp(wake, "fly-api") != 0))
		return wake != NULL ? xstrdup(wake) : NULL;
	len = strlen("fly-api:/") + strlen(src->name) + strlen(machine) + 1;
	spec = xmalloc(len);
	snprintf(spec, len, "fly-api:%s/%s", src->name, machine);
	return spec;
}

static void add_found(struct source *src, const char *name, const char *host, const char *region)
{
	struct backend_config *b;

	src->found = xrealloc(src->found, (size_t)(src->nfound + 1) * sizeof(*src->found));
	b = &src->found[src->nfound++];
	config_copy_backend(b, &src->tmpl);
	free(b->name);
	free(b->host);
	free(b->region);
	b->name = xstrdup(name);
	b->host = xstrdup(host);
	b->region = xstrdup(region);
	free(b->wake);
	b->wake = found_wake(src, name);
}

static const struct backend_config *find_backend(const struct backend_config *list, int n,
						 const char *name)
{
	for (int i = 0; i < n; i++)
		if (strcmp(list[i].name, name) == 0)
			return &list[i];
	return NULL;
}

static void source_fail(struct source *src, const char *why)
{
	if (src->failure == NULL)
		src->failure = why;
}

/* The address of ai as text; false for a family that has none. */
static bool format_addr(const struct evutil_addrinfo *ai, char *host, size_t len)
{
	const void *addr;

	if (ai->ai_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
	else if (ai->ai_family == AF_INET)
		addr = &((const struct sockaddr_in *)ai->ai_addr)->sin_addr;
	else
		return false;
	return inet_ntop(ai->ai_family, addr, host, (socklen_t)len) != NULL;
}

static void addr_lookup_cb(int result, struct evutil_addrinfo *ai, void *arg)
{
	struct addr_lookup *l = arg;
	struct source *src = l->src;
	const struct backend_config *k;
	char host[INET6_ADDRSTRLEN], name[512];
	int naddrs = 0;

	LIST_UNLINK(&disc.addr_lookups, l);
	/* Stopping, src is gone: only free what is ours. */
	for (const struct evutil_addrinfo *a = ai; !disc.is_stopping && result == 0 && a != NULL;
	     a = a->ai_next) {
		if (!format_addr(a, host, sizeof(host)))
			continue;
		naddrs++;
		/* A machine is one backend, at its first address; a dns: name, one per address. */
		if (src->is_fly) {
			add_found(src, l->name, host, l->region);
			break;
		}
		snprintf(name, sizeof(name), "%s/%s", l->name, host);
		if (find_backend(src->found, src->nfound, name) == NULL)
			add_found(src, name, host, l->region);
	}
	if (disc.is_stopping || naddrs > 0) {
		/* done */
	} else if (src->is_fly && (k = find_backend(src->known, src->nknown, l->name)) != NULL) {
		/* Its address record is gone for a moment: keep the one it had. */
		add_found(src, k->name, k->host, l->region);
	} else if (result == EVUTIL_EAI_CANCEL) {
		source_fail(src, "address lookup timed out");
	} else if (result != EVUTIL_EAI_NONAME || !l->is_optional) {
		source_fail(src, result == 0 ? "no address" : evutil_gai_strerror(result));
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	free(l->name);
	free(l->region);
	free(l);
	if (!disc.is_stopping)
		round_done_one();
}

static void lookup_addr(struct source *src, const char *qname, const char *name, const char *region,
			bool is_optional)
{
	struct addr_lookup *l = xcalloc(1, sizeof(*l));
	struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct evdns_getaddrinfo_request *req;

	l->src = src;
	l->name = xstrdup(name);
	l->region = xstrdup(region);
	l->is_optional = is_optional;
	l->next = disc.addr_lookups;
	disc.addr_lookups = l;
	disc.pending++;
	/*
	 * The callback may run (and free l) before this returns, and then the
	 * answer is NULL; otherwise it runs later, and l is still ours here.
	 */
	req = evdns_getaddrinfo(disc.dns, qname, NULL, &hints, addr_lookup_cb, l);
	if (req != NULL)
		l->req = req;
}

/* Both TXT lists are in: one address lookup per machine wanted. */
static void fly_lookup_machines(struct source *src)
{
	static struct fly_machine all[FLY_MAX_MACHINES], started[FLY_MAX_MACHINES];
	int nall = discovery_parse_machines(src->txt[1], all, FLY_MAX_MACHINES);
	int nstarted = discovery_parse_machines(src->txt[0], started, FLY_MAX_MACHINES);
	char qname[512];

	for (int i = 0; i < nall; i++) {
		bool is_started = false;

		for (int j = 0; j < nstarted && !is_started; j++)
			is_started = strcmp(all[i].id, started[j].id) == 0;
		/*
		 * A stopped machine is no use without a way to wake it (wake=none); with
		 * one it is a backend that health will find asleep.
		 */
		if (!is_started && src->tmpl.wake != NULL && strcmp(src->tmpl.wake, "none") == 0)
			continue;
		if (snprintf(qname, sizeof(qname), "%s.vm.%s.internal", all[i].id, src->name) >=
		    (int)sizeof(qname))
			continue;
		lookup_addr(src, qname, all[i].id, all[i].region, !is_started);
	}
}

static void txt_query_free(struct txt_query *q)
{
	LIST_UNLINK(&disc.txt_queries, q);
	event_free(q->ev);
	if (q->fd >= 0)
		evutil_closesocket(q->fd);
	free(q);
}

static void txt_query_cb(evutil_socket_t fd, short what, void *arg)
{
	struct txt_query *q = arg;
	struct source *src = q->src;
	static uint8_t msg[65536];
	char *out;
	enum dns_answer answer = DNS_ANSWER_FAILED;
	ssize_t n;

	if (what & EV_TIMEOUT) {
		source_fail(src, "TXT lookup timed out");
	} else {
		n = recv(fd, msg, sizeof(msg), 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		out = xmalloc(TXT_MAX);
		answer = n < 0 ? DNS_ANSWER_FAILED
			       : discovery_parse_txt_answer(msg, (size_t)n, q->id, out, TXT_MAX);
		if (answer == DNS_ANSWER_NOT_MINE) {
			free(out);
			return;
		}
		if (answer == DNS_ANSWER_NXDOMAIN)
			out[0] = '\0'; /* no machines of that kind */
		if (answer == DNS_ANSWER_FAILED) {
			free(out);
			source_fail(src, n < 0 ? "TXT lookup: no answer from the name server"
					       : "TXT lookup: bad or failed answer");
		} else {
			src->txt[q->which] = out;
		}
	}
	txt_query_free(q);
	if (--src->ntxt_pending == 0 && src->failure == NULL)
		fly_lookup_machines(src);
	round_done_one();
}

static void query_txt(struct source *src, int which, const char *qname)
{
	struct sockaddr_storage ss;
	int sslen = evdns_base_get_nameserver_addr(disc.dns, 0, (struct sockaddr *)&ss, sizeof(ss));
	uint8_t query[DNS_QUERY_MAX];
	struct txt_query *q;
	size_t len;

	src->ntxt_pending++;
	disc.pending++;
	q = xcalloc(1, sizeof(*q));
	q->src = src;
	q->which = which;
	q->next = disc.txt_queries;
	disc.txt_queries = q;
	evutil_secure_rng_get_bytes(&q->id, sizeof(q->id));
	len = discovery_build_query(query, sizeof(query), q->id, qname, DNS_TYPE_TXT);
	q->fd = sslen > 0 ? socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0) : -1;
	/* connect() makes the kernel drop datagrams from anyone but the name server. */
	if (len == 0 || q->fd < 0 || connect(q->fd, (struct sockaddr *)&ss, (socklen_t)sslen) < 0 ||
	    send(q->fd, query, len, 0) < 0) {
		source_fail(src, sslen <= 0 ? "no name server" : "TXT lookup could not be sent");
		if (q->fd >= 0)
			evutil_closesocket(q->fd);
		q->fd = -1;
		/* Ended by its callback on the next loop turn, as a timeout would be. */
		q->ev = CHECK_ALLOC(event_new(disc.base, -1, 0, txt_query_cb, q));
		event_active(q->ev, EV_TIMEOUT, 0);
		return;
	}
	q->ev = CHECK_ALLOC(event_new(disc.base, q->fd, EV_READ | EV_PERSIST, txt_query_cb, q));
	event_add(q->ev,
		  &(struct timeval){.tv_sec = disc.cfg->discovery_timeout_ms / 1000,
				    .tv_usec = disc.cfg->discovery_timeout_ms % 1000 * 1000});
}

static void source_start(struct source *src)
{
	char qname[512];

	src->failure = NULL;
	if (src->is_fly) {
		snprintf(qname, sizeof(qname), "vms.%s.internal", src->name);
		query_txt(src, 0, qname);
		snprintf(qname, sizeof(qname), "all.vms.%s.internal", src->name);
		query_txt(src, 1, qname);
	} else if (src->regions != NULL) {
		char *list = xstrdup(src->regions), *save = NULL;

		for (char *r = strtok_r(list, ", ", &save); r != NULL;
		     r = strtok_r(NULL, ", ", &save)) {
			snprintf(qname, sizeof(qname), "%s.%s", r, src->name);
			/* A region without servers has no name: that is not an outage. */
			lookup_addr(src, qname, src->name, r, true);
		}
		free(list);
	} else {
		lookup_addr(src, src->name, src->name, src->tmpl.region, false);
	}
}

static void free_backends(struct backend_config *list, int n)
{
	for (int i = 0; i < n; i++)
		config_clear_backend(&list[i]);
	free(list);
}

/* The round's result for src: the new known set, or the old one kept (false). */
static bool source_finish(struct source *src)
{
	bool is_ok;

	if (src->failure == NULL && src->nfound == 0)
		src->failure = "no backends found";
	if (src->failure != NULL) {
		if (!src->is_failing)
			log_warn("discover %s: %s; keeping the %d backends last found (logged "
				 "once until it recovers)",
				 src->source, src->failure, src->nknown);
		src->is_failing = true;
		free_backends(src->found, src->nfound);
	} else {
		if (src->is_failing)
			log_info("discover %s: lookups work again (%d backends)", src->source,
				 src->nfound);
		src->is_failing = false;
		free_backends(src->known, src->nknown);
		src->known = src->found;
		src->nknown = src->nfound;
	}
	is_ok = src->failure == NULL;
	src->found = NULL;
	src->nfound = 0;
	for (size_t i = 0; i < ARRAY_SIZE(src->txt); i++) {
		free(src->txt[i]);
		src->txt[i] = NULL;
	}
	return is_ok;
}

static bool same_or_both_null(const char *a, const char *b)
{
	return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

/* Equal in every word a discover= line gives (a reload may change sslmode or wake alone). */
static bool backend_config_equal(const struct backend_config *a, const struct backend_config *b)
{
	return strcmp(a->name, b->name) == 0 && strcmp(a->host, b->host) == 0 &&
	       a->port == b->port && strcmp(a->region, b->region) == 0 &&
	       same_or_both_null(a->sslmode, b->sslmode) && same_or_both_null(a->wake, b->wake) &&
	       same_or_both_null(a->wake_auth_env, b->wake_auth_env);
}

/* What an operator wants to read: which backends came, went or changed. */
static void log_changes(const struct backend_config *old, int nold,
			const struct backend_config *new, int nnew)
{
	for (int i = 0; i < nnew; i++) {
		const struct backend_config *o = find_backend(old, nold, new[i].name);

		if (o == NULL || strcmp(o->host, new[i].host) != 0 || o->port != new[i].port)
			log_info("discovery: backend %s at %s port %d, region \"%s\"%s",
				 new[i].name, new[i].host, new[i].port, new[i].region,
				 o == NULL ? "" : " (a new address)");
		else if (strcmp(o->region, new[i].region) != 0)
			log_info("discovery: backend %s: region \"%s\" -> \"%s\"", new[i].name,
				 o->region, new[i].region);
	}
	for (int i = 0; i < nold; i++)
		if (find_backend(new, nnew, old[i].name) == NULL)
			log_info("discovery: backend %s is gone", old[i].name);
}

/* The union of the known sets (first of a name wins); applied if it differs from the topology's. */
static void publish(void)
{
	struct backend_config *list = NULL;
	int n = 0;
	bool is_same;

	for (int i = 0; i < disc.nsources; i++) {
		const struct source *src = &disc.sources[i];

		for (int j = 0; j < src->nknown; j++) {
			if (find_backend(list, n, src->known[j].name) != NULL)
				continue;
			list = xrealloc(list, (size_t)(n + 1) * sizeof(*list));
			config_copy_backend(&list[n++], &src->known[j]);
		}
	}
	is_same = n == disc.topo->ndiscovered;
	for (int i = 0; i < n && is_same; i++)
		is_same = backend_config_equal(&list[i], &disc.topo->discovered[i]);
	if (is_same) {
		free_backends(list, n);
		return;
	}
	log_changes(disc.topo->discovered, disc.topo->ndiscovered, list, n);
	topology_set_discovered(disc.topo, list, n);
	disc.apply();
}

static void sources_free(struct source *sources, int n)
{
	for (int i = 0; i < n; i++) {
		struct source *src = &sources[i];

		free(src->source);
		free(src->regions);
		config_clear_backend(&src->tmpl);
		free_backends(src->known, src->nknown);
	}
	free(sources);
}

/* New sources from the config; a line still there keeps what it found. */
static void sources_rebuild(void)
{
	const struct config *cfg = disc.cfg;
	struct source *old = disc.sources;
	int nold = disc.nsources;

	disc.sources = xcalloc((size_t)cfg->ndiscovers + 1, sizeof(*disc.sources));
	disc.nsources = cfg->ndiscovers;
	for (int i = 0; i < cfg->ndiscovers; i++) {
		const struct discover_config *dc = &cfg->discovers[i];
		struct source *src = &disc.sources[i];

		src->source = xstrdup(dc->source);
		src->name = src->source + 4;
		src->is_fly = strncmp(dc->source, "fly:", 4) == 0;
		src->regions = dc->regions != NULL ? xstrdup(dc->regions) : NULL;
		config_copy_backend(&src->tmpl, &dc->tmpl);
		for (int j = 0; j < nold; j++) {
			if (old[j].known == NULL || strcmp(old[j].source, dc->source) != 0)
				continue;
			src->known = old[j].known;
			src->nknown = old[j].nknown;
			src->is_failing = old[j].is_failing;
			old[j].known = NULL;
			old[j].nknown = 0;
		}
	}
	sources_free(old, nold);
}

static void round_start(void)
{
	if (disc.is_config_changed) {
		sources_rebuild();
		disc.is_config_changed = false;
	}
	disc.is_again = false;
	timer_add_ms(disc.deadline, disc.cfg->discovery_timeout_ms);
	/* One count for the round itself, so no lookup's quick answer can end it early. */
	disc.pending = 1;
	for (int i = 0; i < disc.nsources; i++)
		source_start(&disc.sources[i]);
	round_done_one();
}

static void round_done_one(void)
{
	int64_t next_ms = disc.cfg->discovery_interval_ms;

	if (--disc.pending > 0)
		return;
	evtimer_del(disc.deadline);
	/* A lost datagram or a short outage should not wait a whole interval. */
	for (int i = 0; i < disc.nsources; i++)
		if (!source_finish(&disc.sources[i]) && disc.cfg->discovery_timeout_ms < next_ms)
			next_ms = disc.cfg->discovery_timeout_ms;
	publish();
	if (disc.is_again || disc.is_config_changed)
		next_ms = 0;
	timer_add_ms(disc.timer, next_ms);
}

static void timer_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	round_start();
}

/*
 * evdns retries a silent name server for long (attempts x timeout): a round
 * ends by discovery_timeout anyway, so an outage is noticed and the last set
 * kept in time. The cancelled lookups report on the next loop turn and end
 * the round.
 */
static void deadline_cb(evutil_socket_t fd UNUSED, short what UNUSED, void *arg UNUSED)
{
	for (struct addr_lookup *l = disc.addr_lookups; l != NULL; l = l->next)
		if (l->req != NULL && !l->is_cancelled) {
			l->is_cancelled = true;
			evdns_getaddrinfo_cancel(l->req);
		}
}

/* A round now, or right after the one in flight. */
static void resolve_soon(void)
{
	if (disc.pending > 0)
		disc.is_again = true;
	else
		timer_add_ms(disc.timer, 0);
}

/* A backend that went down may have moved to another address: look again at once. */
void discovery_note_topology_change(void)
{
	int ndown = 0;

	if (disc.timer == NULL)
		return; /* not started, or stopped: nothing to look up */
	for (int i = 0; i < disc.topo->count; i++)
		ndown += disc.topo->backends[i]->state == BACKEND_DOWN;
	if (ndown > disc.ndown && disc.nsources > 0)
		resolve_soon();
	disc.ndown = ndown;
}

void discovery_start(struct event_base *base, struct evdns_base *dns, struct topology *topo,
		     const struct config *cfg, void (*apply)(void))
{
	disc.base = base;
	disc.dns = dns;
	disc.topo = topo;
	disc.cfg = cfg;
	disc.apply = apply;
	if (cfg->ndiscovers == 0)
		return;
	if (dns == NULL) {
		log_error("discover= lines need a DNS resolver; none is configured");
		return;
	}
	disc.timer = CHECK_ALLOC(evtimer_new(base, timer_cb, NULL));
	disc.deadline = CHECK_ALLOC(evtimer_new(base, deadline_cb, NULL));
	disc.is_config_changed = true;
	timer_add_ms(disc.timer, 0);
}

void discovery_reconfigure(const struct config *cfg)
{
	disc.cfg = cfg;
	disc.is_config_changed = true;
	if (disc.timer == NULL) {
		if (cfg->ndiscovers > 0)
			log_warn("reload: discover= lines take effect only after a restart");
		return;
	}
	resolve_soon();
}

void discovery_stop(void)
{
	if (disc.timer == NULL)
		return;
	disc.is_stopping = true;
	while (disc.txt_queries != NULL)
		txt_query_free(disc.txt_queries);
	/* Unlinked first: each callback, on the loop's last turn, then only frees its lookup. */
	while (disc.addr_lookups != NULL) {
		struct addr_lookup *l = disc.addr_lookups;

		disc.addr_lookups = l->next;
		if (!l->is_cancelled)
			evdns_getaddrinfo_cancel(l->req);
	}
	sources_free(disc.sources, disc.nsources);
	disc.sources = NULL;
	disc.nsources = 0;
	event_free(disc.timer);
	disc.timer = NULL;
	event_free(disc.deadline);
}
