/* WAL positions in text (lsn.h). */
#include "pgwing/lsn.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LSN_HALF_MAX_DIGITS 8

/*
 * The length of the half of an LSN at text: 1 to 8 hex digits, as pg_lsn
 * reads it; 0 if there is none. (sscanf's %x would also take blanks, a sign,
 * a 0x and more digits than fit, and read them as some other position.)
 */
static size_t half_len(const char *text)
{
	size_t n = strspn(text, "0123456789abcdefABCDEF");

	return n <= LSN_HALF_MAX_DIGITS ? n : 0;
}

bool lsn_parse(const char *text, uint64_t *lsn)
{
	size_t hi = half_len(text), lo;

	if (hi == 0 || text[hi] != '/')
		return false;
	lo = half_len(text + hi + 1);
	if (lo == 0 || text[hi + 1 + lo] != '\0')
		return false;
	*lsn = (uint64_t)strtoul(text, NULL, 16) << 32 | strtoul(text + hi + 1, NULL, 16);
	return true;
}

void lsn_format(uint64_t lsn, char buf[LSN_TEXT_MAX])
{
	snprintf(buf, LSN_TEXT_MAX, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}
