/* WAL positions in text (lsn.h). */
#include "pgwing/lsn.h"

#include <inttypes.h>
#include <stdio.h>

bool lsn_parse(const char *text, uint64_t *lsn)
{
	uint32_t hi, lo;
	int end = 0;

	if (sscanf(text, "%" SCNx32 "/%" SCNx32 "%n", &hi, &lo, &end) != 2 || text[end] != '\0')
		return false;
	*lsn = (uint64_t)hi << 32 | lo;
	return true;
}

void lsn_format(uint64_t lsn, char buf[LSN_TEXT_MAX])
{
	snprintf(buf, LSN_TEXT_MAX, "%" PRIX32 "/%" PRIX32, (uint32_t)(lsn >> 32), (uint32_t)lsn);
}
