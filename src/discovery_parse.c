/*
 * DNS wire format for one TXT query and its answer (RFC 1035), and Fly's
 * machine lists. Defensive throughout: the answer comes off the network, and
 * a name server on a private network is no more trusted than a client.
 */
#include "pgwing/discovery_parse.h"

#include <string.h>

#define DNS_HEADER_SIZE    12
#define DNS_CLASS_IN       1
#define DNS_TYPE_OPT       41
#define DNS_EDNS_SIZE      4096
#define DNS_FLAG_QR        0x8000
#define DNS_FLAG_TC        0x0200
#define DNS_FLAG_RD        0x0100
#define DNS_RCODE_MASK     0x000f
#define DNS_RCODE_NXDOMAIN 3
#define DNS_LABEL_MAX      63
#define DNS_NAME_MAX       255
/* Compression pointers a name may follow: more is a loop. */
#define DNS_MAX_JUMPS      32

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

size_t discovery_build_query(uint8_t *buf, size_t cap, uint16_t id, const char *name,
			     uint16_t qtype)
{
	size_t len = strlen(name), pos = DNS_HEADER_SIZE;
	static const uint8_t opt[] = {
		0, 0, DNS_TYPE_OPT, DNS_EDNS_SIZE >> 8, DNS_EDNS_SIZE & 0xff, 0, 0, 0, 0, 0, 0};

	if (len > 0 && name[len - 1] == '.')
		len--;
	/* Labels with their length bytes and the root: len + 2 bytes. */
	if (len == 0 || len + 2 > DNS_NAME_MAX || cap < DNS_HEADER_SIZE + len + 2 + 4 + sizeof(opt))
		return 0;
	memset(buf, 0, DNS_HEADER_SIZE);
	put16(buf, id);
	put16(buf + 2, DNS_FLAG_RD);
	put16(buf + 4, 1);  /* one question */
	put16(buf + 10, 1); /* one additional record: EDNS0 */
	for (size_t start = 0; start <= len;) {
		const char *dot = memchr(name + start, '.', len - start);
		size_t label = (dot != NULL ? (size_t)(dot - name) : len) - start;

		if (label == 0 || label > DNS_LABEL_MAX)
			return 0;
		buf[pos++] = (uint8_t)label;
		memcpy(buf + pos, name + start, label);
		pos += label;
		start += label + 1;
	}
	buf[pos++] = 0;
	put16(buf + pos, qtype);
	put16(buf + pos + 2, DNS_CLASS_IN);
	pos += 4;
	memcpy(buf + pos, opt, sizeof(opt));
	return pos + sizeof(opt);
}

/* The offset just past the name at pos (which may end in a pointer), or 0 if malformed. */
static size_t skip_name(const uint8_t *msg, size_t len, size_t pos)
{
	for (int n = 0; pos < len; n++) {
		uint8_t c = msg[pos];

		if (n > DNS_NAME_MAX)
			return 0;
		if (c == 0)
			return pos + 1;
		if ((c & 0xc0) == 0xc0)
			return pos + 2 <= len ? pos + 2 : 0;
		if ((c & 0xc0) != 0)
			return 0;
		pos += 1 + (size_t)c;
	}
	return 0;
}

/*
 * Append a TXT record's character-strings (rdata) to out; false when out is
 * full or rdata bad. A NUL would silently cut the list short: bad too.
 */
static bool append_txt(const uint8_t *rdata, size_t rdlen, char *out, size_t outcap, size_t *outlen)
{
	for (size_t pos = 0; pos < rdlen;) {
		size_t n = rdata[pos++];

		if (n > rdlen - pos || *outlen + n >= outcap ||
		    memchr(rdata + pos, '\0', n) != NULL)
			return false;
		memcpy(out + *outlen, rdata + pos, n);
		*outlen += n;
		pos += n;
	}
	return true;
}

static enum dns_answer parse_txt_answer(const uint8_t *msg, size_t len, uint16_t id, char *out,
					size_t outcap)
{
	size_t pos = DNS_HEADER_SIZE, outlen = 0;
	uint16_t flags, nquestions, nanswers;
	int nrecords = 0;

	if (len < DNS_HEADER_SIZE || get16(msg) != id || !(get16(msg + 2) & DNS_FLAG_QR))
		return DNS_ANSWER_NOT_MINE;
	flags = get16(msg + 2);
	if (flags & DNS_FLAG_TC)
		return DNS_ANSWER_FAILED;
	if ((flags & DNS_RCODE_MASK) == DNS_RCODE_NXDOMAIN)
		return DNS_ANSWER_NXDOMAIN;
	if ((flags & DNS_RCODE_MASK) != 0)
		return DNS_ANSWER_FAILED;
	nquestions = get16(msg + 4);
	nanswers = get16(msg + 6);
	for (int i = 0; i < nquestions; i++) {
		pos = skip_name(msg, len, pos);
		if (pos == 0 || pos + 4 > len)
			return DNS_ANSWER_FAILED;
		pos += 4;
	}
	for (int i = 0; i < nanswers; i++) {
		uint16_t type, class, rdlen;

		pos = skip_name(msg, len, pos);
		if (pos == 0 || pos + 10 > len)
			return DNS_ANSWER_FAILED;
		type = get16(msg + pos);
		class = get16(msg + pos + 2);
		rdlen = get16(msg + pos + 8);
		pos += 10;
		if (rdlen > len - pos)
			return DNS_ANSWER_FAILED;
		/* CNAMEs and the like come first in a recursive answer: only TXT counts. */
		if (type == DNS_TYPE_TXT && class == DNS_CLASS_IN) {
			if (nrecords++ > 0) {
				if (outlen + 1 >= outcap)
					return DNS_ANSWER_FAILED;
				out[outlen++] = ',';
			}
			if (!append_txt(msg + pos, rdlen, out, outcap, &outlen))
				return DNS_ANSWER_FAILED;
		}
		pos += rdlen;
	}
	out[outlen] = '\0';
	return DNS_ANSWER_OK;
}

enum dns_answer discovery_parse_txt_answer(const uint8_t *msg, size_t len, uint16_t id, char *out,
					   size_t outcap)
{
	enum dns_answer answer;

	if (outcap == 0)
		return DNS_ANSWER_FAILED;
	answer = parse_txt_answer(msg, len, id, out, outcap);
	/* Whatever a failed answer had written so far is no list. */
	if (answer != DNS_ANSWER_OK)
		out[0] = '\0';
	return answer;
}

static bool is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Copy the word of is_word_char at *pos (at most cap - 1 long) into dst; false if none fits. */
static bool take_word(const char **pos, const char *end, char *dst, size_t cap)
{
	const char *start = *pos;

	while (*pos < end && is_word_char(**pos))
		(*pos)++;
	if (*pos == start || (size_t)(*pos - start) >= cap)
		return false;
	memcpy(dst, start, (size_t)(*pos - start));
	dst[*pos - start] = '\0';
	return true;
}

static bool is_listed(const struct fly_machine *list, int n, const char *id)
{
	for (int i = 0; i < n; i++)
		if (strcmp(list[i].id, id) == 0)
			return true;
	return false;
}

int discovery_parse_machines(const char *txt, struct fly_machine *out, int max)
{
	int n = 0;

	for (const char *item = txt; n < max && *item != '\0';) {
		const char *end = strchr(item, ',');
		const char *pos;
		struct fly_machine m;

		if (end == NULL)
			end = item + strlen(item);
		pos = item;
		while (pos < end && *pos == ' ')
			pos++;
		/* "<id> <region>", nothing else but blanks around it. */
		if (take_word(&pos, end, m.id, sizeof(m.id)) && pos < end && *pos++ == ' ' &&
		    take_word(&pos, end, m.region, sizeof(m.region))) {
			while (pos < end && *pos == ' ')
				pos++;
			if (pos == end && !is_listed(out, n, m.id))
				out[n++] = m;
		}
		item = *end == ',' ? end + 1 : end;
	}
	return n;
}
