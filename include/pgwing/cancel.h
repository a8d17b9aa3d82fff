/*
 * Cancel keys: pgwing gives each client its own (pid, key) and maps it to the
 * server the client is on, so a CancelRequest reaches the right backend.
 */
#ifndef PGWING_CANCEL_H
#define PGWING_CANCEL_H

#include "pgwing/common.h"

struct client;

/* Assign a unique key to a client (one handed over keeps its own) and remember it. */
void cancel_register(struct client *cl);
void cancel_unregister(struct client *cl);
/* Forward a CancelRequest for (pid, key) to that client's backend, if any. */
void cancel_forward(uint32_t pid, uint32_t key);

/* The process state this module reads (the loop, the config, the topology). */
struct runtime;
void cancel_init(const struct runtime *runtime);

#endif
