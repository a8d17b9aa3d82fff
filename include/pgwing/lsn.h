/*
 * WAL positions (LSNs) in Postgres's text form, X/Y in hex: what the probes
 * read, what a session is told after its writes (pgwing.commit_lsn) and may
 * ask for (pgwing.min_lsn).
 */
#ifndef PGWING_LSN_H
#define PGWING_LSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Enough for "FFFFFFFF/FFFFFFFF" and its NUL. */
#define LSN_TEXT_MAX 18

/* text is exactly an LSN (no space, nothing after): *lsn set, true. */
bool lsn_parse(const char *text, uint64_t *lsn);
/* As Postgres prints it (pg_lsn's output). */
void lsn_format(uint64_t lsn, char buf[LSN_TEXT_MAX]);

#endif
