/*
 * The pure half of discovery: the DNS messages for a TXT lookup (evdns has no
 * TXT query) and Fly's machine lists in them. Everything here reads what a
 * network peer sent, so it is unit-tested and fuzzed.
 */
#ifndef PGWING_DISCOVERY_PARSE_H
#define PGWING_DISCOVERY_PARSE_H

#include "pgwing/common.h"

#define DNS_TYPE_TXT  16
/* Room for a query: header, a name of at most 255 bytes, type and class, an EDNS0 record. */
#define DNS_QUERY_MAX 300

/*
 * Write a recursive query for name (dotted, a trailing dot allowed) and qtype
 * into buf, with an EDNS0 record offering 4096-byte answers so long machine
 * lists fit one UDP datagram. Returns its length, 0 when name is no valid DNS
 * name or buf too small.
 */
size_t discovery_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
			     uint16_t qtype);

enum dns_answer {
	DNS_ANSWER_OK,       /* out holds the joined TXT strings (maybe empty: no records) */
	DNS_ANSWER_NXDOMAIN, /* the name does not exist */
	DNS_ANSWER_NOT_MINE, /* another id, or not a response: keep waiting */
	DNS_ANSWER_FAILED,   /* a server error, truncated, malformed, or too long for out */
};

/*
 * Read the response msg to query id: every TXT record's strings joined (a
 * record's strings end to end, records separated by ","), NUL-terminated in out;
 * out is "" unless the answer is DNS_ANSWER_OK. A string holding a NUL fails it.
 */
enum dns_answer discovery_parse_txt_answer(const uint8_t *msg, size_t len, uint16_t id, char *out,
					   size_t outcap);

/* A Fly machine as listed in vms.<app>.internal: "<id> <region>". */
struct fly_machine {
	char id[64];
	char region[32];
};

/*
 * Parse Fly's machine list (comma-separated "<id> <region>" items) into at most
 * max machines. Items that are not a plain id and region (letters, digits, -
 * and _) are skipped, and so are repeats of an id. Returns how many were stored.
 */
int discovery_parse_machines(const char *txt, struct fly_machine *out, int max);

#endif
