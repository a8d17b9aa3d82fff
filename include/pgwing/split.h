/*
 * rw_split's questions of SQL text that the classifier does not answer: does
 * a statement open a read-only transaction block (which runs whole on a
 * replica), and what value did a session SET one of pgwing's own session
 * settings (pgwing.split, pgwing.min_lsn) to. Pure code over strings.
 */
#ifndef PGWING_SPLIT_H
#define PGWING_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * sql (len bytes, one Query's text) is exactly one BEGIN or START
 * TRANSACTION whose modes say READ ONLY and not READ WRITE. Anything it
 * cannot read plainly (comments, quotes, other statements) is a no: the
 * block then runs on the primary, which is always right.
 */
bool split_begins_read_only(const char *sql, size_t len);

/*
 * The value of a recorded "SET [SESSION] name {TO|=} value" (set_text, as
 * the session ran it) into buf, quotes removed; false if it is not one
 * plain value (a list, DEFAULT, or too long for buf).
 */
bool split_set_value(const char *set_text, char *buf, size_t buflen);

/*
 * The request (len bytes, its messages as sent) mentions what tells a
 * primary from a replica (pg_is_in_recovery(), transaction_read_only,
 * in_hot_standby, WAL positions, replication views) or what only the
 * primary holds (pg_prepared_xacts): asked through the
 * read-write port it must be the primary's answer, as a direct connection
 * gives, so it runs there. Matched anywhere, in any case: a mention in a
 * string or a comment only costs the replica a read.
 */
bool split_asks_server_role(const uint8_t *request, size_t len);

#endif
