/*
 * The process-wide state every module reads: the loop, the live config, the
 * auth file and the topology. Owned and swapped (on reload) by main.c.
 */
#ifndef PGWING_RUNTIME_H
#define PGWING_RUNTIME_H

#include "pgwing/common.h"

struct event_base;
struct config;
struct auth_file;
struct topology;
struct evdns_base;

struct runtime {
	struct event_base *base;
	struct config *cfg;
	struct auth_file *auth;
	struct topology *topo;
	struct evdns_base *dns;
	bool is_shutting_down;
};

extern struct runtime rt;

#endif
