/*
 * Postgres protocol v3 framing and message builders. Everything here is pure
 * over evbuffers and byte ranges, so it is unit-tested and fuzzed on its own.
 */
#include "pgwing/proto.h"

#include <event2/buffer.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum proto_frame proto_peek_message(struct evbuffer *buf, uint32_t max_len, char *type,
				    uint32_t *len)
{
	uint8_t hdr[PROTO_HEADER_LEN];
	uint32_t n;

	if (evbuffer_copyout(buf, hdr, sizeof(hdr)) < (ev_ssize_t)sizeof(hdr))
		return PROTO_FRAME_NEED_MORE;
	memcpy(&n, hdr + 1, 4);
	n = ntohl(n);
	*type = (char)hdr[0];
	*len = n;
	if (n < 4)
		return PROTO_FRAME_BAD_LENGTH;
	if (n > max_len)
		return PROTO_FRAME_TOO_LARGE;
	return PROTO_FRAME_OK;
}

enum proto_frame proto_next_message(struct evbuffer *buf, uint32_t max_len, char *type,
				    uint32_t *len, uint8_t **msg)
{
	enum proto_frame frame = proto_peek_message(buf, max_len, type, len);

	if (frame != PROTO_FRAME_OK)
		return frame;
	if (evbuffer_get_length(buf) < 1 + (size_t)*len)
		return PROTO_FRAME_NEED_MORE;
	*msg = evbuffer_pullup(buf, 1 + (ev_ssize_t)*len);
	return PROTO_FRAME_OK;
}

enum proto_frame proto_peek_startup(struct evbuffer *buf, uint32_t max_len, uint32_t *len,
				    uint32_t *code)
{
	uint32_t hdr[2];
	ev_ssize_t have = evbuffer_copyout(buf, hdr, sizeof(hdr));

	/* The length alone can be judged as soon as it is there: junk gets no grace period. */
	if (have < 4)
		return PROTO_FRAME_NEED_MORE;
	*len = ntohl(hdr[0]);
	if (*len < 8)
		return PROTO_FRAME_BAD_LENGTH;
	if (*len > max_len)
		return PROTO_FRAME_TOO_LARGE;
	if (have < (ev_ssize_t)sizeof(hdr))
		return PROTO_FRAME_NEED_MORE;
	*code = ntohl(hdr[1]);
	return PROTO_FRAME_OK;
}

enum proto_scan proto_scan_messages(struct evbuffer *in, uint32_t max_len, uint32_t *remaining,
				    size_t *movable, proto_inspect_fn inspect, void *arg)
{
	size_t avail = evbuffer_get_length(in);
	size_t done = 0;

	for (;;) {
		struct evbuffer_ptr at;
		uint8_t hdr[PROTO_HEADER_LEN];
		uint32_t len;

		if (*remaining > 0) {
			size_t take = avail - done < *remaining ? avail - done : *remaining;

			done += take;
			*remaining -= (uint32_t)take;
			if (*remaining > 0)
				break;
		}
		if (avail - done < PROTO_HEADER_LEN)
			break;
		evbuffer_ptr_set(in, &at, done, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(in, &at, hdr, sizeof(hdr));
		memcpy(&len, hdr + 1, 4);
		len = ntohl(len);
		/* 1 + len must fit *remaining, whatever max_len the caller allows. */
		if (len < 4 || len > max_len || len == UINT32_MAX) {
			*movable = done;
			return PROTO_SCAN_BAD_LENGTH;
		}
		switch (inspect != NULL ? inspect(arg, (char)hdr[0], len, in, &at)
					: PROTO_INSPECT_FORWARD) {
		case PROTO_INSPECT_FORWARD:
			*remaining = len + 1;
			break;
		case PROTO_INSPECT_STOP:
			*movable = done;
			return PROTO_SCAN_STOPPED;
		case PROTO_INSPECT_WAIT:
			*movable = done;
			return PROTO_SCAN_DONE;
		}
	}
	*movable = done;
	return PROTO_SCAN_DONE;
}

void proto_reader_init(struct proto_reader *r, const void *data, size_t len)
{
	r->pos = data;
	r->end = r->pos + len;
	r->has_failed = false;
}

size_t proto_reader_remaining(const struct proto_reader *r)
{
	return (size_t)(r->end - r->pos);
}

const uint8_t *proto_read_bytes(struct proto_reader *r, size_t n)
{
	const uint8_t *p = r->pos;

	if (r->has_failed || proto_reader_remaining(r) < n) {
		r->has_failed = true;
		return NULL;
	}
	r->pos += n;
	return p;
}

uint8_t proto_read_byte(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 1);

	return p != NULL ? p[0] : 0;
}

uint16_t proto_read_int16(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 2);

	return p != NULL ? (uint16_t)(p[0] << 8 | p[1]) : 0;
}

uint32_t proto_read_int32(struct proto_reader *r)
{
	const uint8_t *p = proto_read_bytes(r, 4);

	return p != NULL ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]
			 : 0;
}

const char *proto_read_cstring(struct proto_reader *r)
{
	const uint8_t *nul;
	const char *s;

	if (r->has_failed)
		return NULL;
	nul = memchr(r->pos, '\0', proto_reader_remaining(r));
	if (nul == NULL) {
		r->has_failed = true;
		return NULL;
	}
	s = (const char *)r->pos;
	r->pos = nul + 1;
	return s;
}

static void startup_params_add(struct startup_params *p, const char *name, const char *value)
{
	p->items = xrealloc(p->items, (p->count + 1) * sizeof(*p->items));
	p->items[p->count].name = xstrdup(name);
	p->items[p->count].value = xstrdup(value);
	p->count++;
}

const char *startup_params_get(const struct startup_params *p, const char *name)
{
	for (size_t i = 0; i < p->count; i++)
		if (strcmp(p->items[i].name, name) == 0)
			return p->items[i].value;
	return NULL;
}

bool proto_parse_startup(const uint8_t *body, size_t len, struct startup_params *out,
			 const char **err)
{
	struct proto_reader r;

	memset(out, 0, sizeof(*out));
	proto_reader_init(&r, body, len);
	for (;;) {
		const char *name = proto_read_cstring(&r);
		const char *value;

		if (name == NULL) {
			*err = "invalid startup packet layout: expected terminator as last byte";
			goto fail;
		}
		if (name[0] == '\0')
			break;
		value = proto_read_cstring(&r);
		if (value == NULL) {
			*err = "invalid startup packet layout: expected terminator as last byte";
			goto fail;
		}
		if (startup_params_get(out, name) != NULL) {
			*err = "invalid startup packet: duplicate parameter";
			goto fail;
		}
		startup_params_add(out, name, value);
	}
	if (proto_reader_remaining(&r) != 0) {
		*err = "invalid startup packet layout: expected terminator as last byte";
		goto fail;
	}
	out->user = startup_params_get(out, "user");
	if (out->user == NULL || out->user[0] == '\0') {
		*err = "no PostgreSQL user name specified in startup packet";
		goto fail;
	}
	out->database = startup_params_get(out, "database");
	if (out->database == NULL || out->database[0] == '\0')
		out->database = out->user;
	return true;
fail:
	startup_params_free(out);
	return false;
}

void startup_params_free(struct startup_params *p)
{
	for (size_t i = 0; i < p->count; i++) {
		free(p->items[i].name);
		free(p->items[i].value);
	}
	free(p->items);
	memset(p, 0, sizeof(*p));
}

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error_fields *out)
{
	struct proto_reader r;

	memset(out, 0, sizeof(*out));
	proto_reader_init(&r, body, len);
	for (;;) {
		uint8_t field = proto_read_byte(&r);
		const char *value;

		if (r.has_failed)
			return false;
		if (field == 0)
			return true;
		value = proto_read_cstring(&r);
		if (value == NULL)
			return false;
		switch (field) {
		case 'V':
			out->severity = value;
			break;
		case 'S':
			if (out->severity == NULL)
				out->severity = value;
			break;
		case 'C':
			out->sqlstate = value;
			break;
		case 'M':
			out->message = value;
			break;
		default:
			break;
		}
	}
}

/*
 * Builders write the body into a scratch buffer, then prepend the header and move
 * the chains into out: no length patching, no copy of the body. They are off the
 * forwarding path, so the scratch allocation does not matter.
 */
struct msg {
	struct evbuffer *out;
	struct evbuffer *body;
	char type; /* '\0' for startup-phase packets, which have no type byte */
};

static struct msg msg_begin(struct evbuffer *out, char type)
{
	struct msg m = {out, evbuffer_new(), type};

	if (m.body == NULL)
		abort();
	return m;
}

static void msg_end(struct msg m)
{
	uint32_t len = htonl((uint32_t)(evbuffer_get_length(m.body) + 4));

	evbuffer_prepend(m.body, &len, 4);
	if (m.type != '\0')
		evbuffer_prepend(m.body, &m.type, 1);
	evbuffer_add_buffer(m.out, m.body);
	evbuffer_free(m.body);
}

static void put_int32(struct evbuffer *out, uint32_t v)
{
	v = htonl(v);
	evbuffer_add(out, &v, 4);
}

static void put_int16(struct evbuffer *out, uint16_t v)
{
	v = htons(v);
	evbuffer_add(out, &v, 2);
}

static void put_cstring(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, s, strlen(s) + 1);
}

static void put_fields(struct evbuffer *out, char type, const char *severity, const char *sqlstate,
		       const char *fmt, va_list ap)
{
	struct msg m = msg_begin(out, type);
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	evbuffer_add(m.body, "S", 1);
	put_cstring(m.body, severity);
	evbuffer_add(m.body, "V", 1);
	put_cstring(m.body, severity);
	evbuffer_add(m.body, "C", 1);
	put_cstring(m.body, sqlstate);
	evbuffer_add(m.body, "M", 1);
	put_cstring(m.body, text);
	evbuffer_add(m.body, "", 1);
	msg_end(m);
}

void proto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_fields(out, 'E', severity, sqlstate, fmt, ap);
	va_end(ap);
}

void proto_put_notice(struct evbuffer *out, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_fields(out, 'N', "NOTICE", sqlstate, fmt, ap);
	va_end(ap);
}

void proto_put_auth(struct evbuffer *out, uint32_t code, const void *data, size_t len)
{
	struct msg m = msg_begin(out, 'R');

	put_int32(m.body, code);
	if (len > 0)
		evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_parameter_status(struct evbuffer *out, const char *name, const char *value)
{
	struct msg m = msg_begin(out, 'S');

	put_cstring(m.body, name);
	put_cstring(m.body, value);
	msg_end(m);
}

void proto_put_backend_key(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct msg m = msg_begin(out, 'K');

	put_int32(m.body, pid);
	put_int32(m.body, key);
	msg_end(m);
}

void proto_put_ready(struct evbuffer *out, char tx_status)
{
	struct msg m = msg_begin(out, 'Z');

	evbuffer_add(m.body, &tx_status, 1);
	msg_end(m);
}

void proto_put_startup(struct evbuffer *out, const struct startup_params *params)
{
	struct msg m = msg_begin(out, '\0');

	put_int32(m.body, PROTO_VERSION_3);
	for (size_t i = 0; i < params->count; i++) {
		put_cstring(m.body, params->items[i].name);
		put_cstring(m.body, params->items[i].value);
	}
	evbuffer_add(m.body, "", 1);
	msg_end(m);
}

void proto_put_cancel(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct msg m = msg_begin(out, '\0');

	put_int32(m.body, PROTO_CANCEL_CODE);
	put_int32(m.body, pid);
	put_int32(m.body, key);
	msg_end(m);
}

void proto_put_password(struct evbuffer *out, const char *password)
{
	struct msg m = msg_begin(out, 'p');

	put_cstring(m.body, password);
	msg_end(m);
}

void proto_put_sasl_initial(struct evbuffer *out, const char *mechanism, const void *data,
			    size_t len)
{
	struct msg m = msg_begin(out, 'p');

	put_cstring(m.body, mechanism);
	put_int32(m.body, (uint32_t)len);
	evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_sasl_response(struct evbuffer *out, const void *data, size_t len)
{
	struct msg m = msg_begin(out, 'p');

	evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_terminate(struct evbuffer *out)
{
	struct msg m = msg_begin(out, 'X');

	msg_end(m);
}

void proto_put_query(struct evbuffer *out, const char *sql)
{
	struct msg m = msg_begin(out, 'Q');

	put_cstring(m.body, sql);
	msg_end(m);
}

void proto_put_row_description(struct evbuffer *out, const struct proto_column *cols, size_t ncols)
{
	struct msg m = msg_begin(out, 'T');

	put_int16(m.body, (uint16_t)ncols);
	for (size_t i = 0; i < ncols; i++) {
		put_cstring(m.body, cols[i].name);
		put_int32(m.body, 0); /* table oid */
		put_int16(m.body, 0); /* column number */
		put_int32(m.body, cols[i].type_oid);
		put_int16(m.body, (uint16_t)-1); /* type size: reported as variable */
		put_int32(m.body, (uint32_t)-1); /* type modifier */
		put_int16(m.body, 0);            /* text format */
	}
	msg_end(m);
}

void proto_put_data_row(struct evbuffer *out, const char *const *values, size_t nvalues)
{
	struct msg m = msg_begin(out, 'D');

	put_int16(m.body, (uint16_t)nvalues);
	for (size_t i = 0; i < nvalues; i++) {
		if (values[i] == NULL) {
			put_int32(m.body, (uint32_t)-1);
			continue;
		}
		put_int32(m.body, (uint32_t)strlen(values[i]));
		evbuffer_add(m.body, values[i], strlen(values[i]));
	}
	msg_end(m);
}

void proto_put_command_complete(struct evbuffer *out, const char *tag)
{
	struct msg m = msg_begin(out, 'C');

	put_cstring(m.body, tag);
	msg_end(m);
}
