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

/*
 * A position in an evbuffer that reads its chains in place. A few chains are
 * peeked at a time; only a walk past them asks libevent for the next few.
 */
#define WALK_VECS 8

struct walk {
	struct evbuffer *buf;
	struct evbuffer_iovec vec[WALK_VECS];
	int nvec;   /* chains peeked */
	int i;      /* the current one */
	size_t off; /* offset into vec[i] */
	size_t pos; /* offset from the start of the buffer */
	size_t end; /* the buffer's length */
};

static void walk_peek(struct walk *w)
{
	struct evbuffer_ptr p;

	w->i = 0;
	w->off = 0;
	w->nvec = 0;
	if (w->pos == 0)
		w->nvec = evbuffer_peek(w->buf, -1, NULL, w->vec, WALK_VECS);
	else if (w->pos < w->end && evbuffer_ptr_set(w->buf, &p, w->pos, EVBUFFER_PTR_SET) == 0)
		w->nvec = evbuffer_peek(w->buf, -1, &p, w->vec, WALK_VECS);
	if (w->nvec > WALK_VECS)
		w->nvec = WALK_VECS;
}

static void walk_init(struct walk *w, struct evbuffer *buf, size_t pos)
{
	w->buf = buf;
	w->pos = pos;
	w->end = evbuffer_get_length(buf);
	walk_peek(w);
}

/* Bytes readable in place from the current position. */
static size_t walk_contiguous(const struct walk *w)
{
	return w->i < w->nvec ? w->vec[w->i].iov_len - w->off : 0;
}

static const uint8_t *walk_here(const struct walk *w)
{
	return (const uint8_t *)w->vec[w->i].iov_base + w->off;
}

/* Move n bytes on (no further than the end); the current chain always has a byte left. */
static void walk_skip(struct walk *w, size_t n)
{
	w->pos += n;
	n += w->off;
	while (w->i < w->nvec && n >= w->vec[w->i].iov_len) {
		n -= w->vec[w->i].iov_len;
		w->i++;
	}
	w->off = n;
	if (w->i == w->nvec && w->pos < w->end)
		walk_peek(w);
}

/* n bytes from the current position, which are buffered. */
static void walk_copy(const struct walk *w, uint8_t *dst, size_t n)
{
	size_t off = w->off, got = 0;
	struct evbuffer_ptr p;

	for (int i = w->i; got < n && i < w->nvec; i++, off = 0) {
		size_t k = w->vec[i].iov_len - off;

		if (k > n - got)
			k = n - got;
		memcpy(dst + got, (const uint8_t *)w->vec[i].iov_base + off, k);
		got += k;
	}
	if (got == n)
		return;
	/* It runs past the chains peeked at: rare enough for the slow way. */
	evbuffer_ptr_set(w->buf, &p, w->pos, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(w->buf, &p, dst, n);
}

/* The header at the current position, which is buffered; body set when all is in this chain. */
static void walk_header(const struct walk *w, struct proto_msg *m)
{
	uint8_t copy[PROTO_HEADER_LEN];
	const uint8_t *hdr = copy;
	uint32_t len;

	if (walk_contiguous(w) >= PROTO_HEADER_LEN)
		hdr = walk_here(w);
	else
		walk_copy(w, copy, sizeof(copy));
	memcpy(&len, hdr + 1, 4);
	m->type = (char)hdr[0];
	m->len = ntohl(len);
	m->offset = w->pos;
	m->body = m->len >= 4 && walk_contiguous(w) >= 1 + (size_t)m->len
			  ? walk_here(w) + PROTO_HEADER_LEN
			  : NULL;
}

/* Where the scan ended: what is held stays, and is walked again from its start next time. */
static enum proto_scan scan_end(size_t pos, size_t held, uint32_t *remaining, size_t *movable,
				enum proto_scan result)
{
	*movable = pos;
	if (held < pos) {
		*movable = held;
		*remaining = 0;
	}
	return result;
}

/* The scan over a walk set up on either kind of input; inspectors see w->buf. */
static enum proto_scan scan_walk(struct walk *w, uint32_t max_len, uint32_t *remaining,
				 size_t *movable, proto_inspect_fn inspect, void *arg)
{
	size_t held = SIZE_MAX; /* where the hold began, while one is on */

	for (;;) {
		struct proto_msg m;

		if (*remaining > 0) {
			size_t take = w->end - w->pos < *remaining ? w->end - w->pos : *remaining;

			walk_skip(w, take);
			*remaining -= (uint32_t)take;
			if (*remaining > 0)
				break;
		}
		if (w->end - w->pos < PROTO_HEADER_LEN)
			break;
		walk_header(w, &m);
		/* 1 + len must fit *remaining, whatever max_len the caller allows. */
		if (m.len < 4 || m.len > max_len || m.len == UINT32_MAX)
			return scan_end(w->pos, held, remaining, movable, PROTO_SCAN_BAD_LENGTH);
		switch (inspect != NULL ? inspect(arg, w->buf, &m) : PROTO_INSPECT_FORWARD) {
		case PROTO_INSPECT_HOLD:
			if (held == SIZE_MAX)
				held = w->pos;
			break;
		case PROTO_INSPECT_RELEASE:
			held = SIZE_MAX;
			break;
		case PROTO_INSPECT_FORWARD:
			break;
		case PROTO_INSPECT_STOP:
			return scan_end(w->pos, held, remaining, movable, PROTO_SCAN_STOPPED);
		case PROTO_INSPECT_WAIT:
			return scan_end(w->pos, held, remaining, movable, PROTO_SCAN_DONE);
		}
		*remaining = m.len + 1;
	}
	return scan_end(w->pos, held, remaining, movable, PROTO_SCAN_DONE);
}

enum proto_scan proto_scan_messages(struct evbuffer *in, uint32_t max_len, uint32_t *remaining,
				    size_t *movable, proto_inspect_fn inspect, void *arg)
{
	struct walk w;

	walk_init(&w, in, 0);
	return scan_walk(&w, max_len, remaining, movable, inspect, arg);
}

enum proto_scan proto_scan_bytes(const uint8_t *data, size_t len, uint32_t max_len,
				 uint32_t *remaining, size_t *movable, proto_inspect_fn inspect,
				 void *arg)
{
	/*
	 * One extent that is all there is: the walk never needs to peek again.
	 * Set field by field: zeroing the unused extents cost more than the scan.
	 */
	struct walk w;

	w.buf = NULL;
	w.vec[0].iov_base = (void *)data;
	w.vec[0].iov_len = len;
	w.nvec = len > 0;
	w.i = 0;
	w.off = 0;
	w.pos = 0;
	w.end = len;
	return scan_walk(&w, max_len, remaining, movable, inspect, arg);
}

const uint8_t *proto_msg_body(struct evbuffer *in, const struct proto_msg *msg, void *scratch)
{
	size_t n = msg->len - 4;
	struct evbuffer_ptr p;

	if (msg->body != NULL || in == NULL)
		return msg->body;
	if (evbuffer_get_length(in) < msg->offset + 1 + msg->len ||
	    evbuffer_ptr_set(in, &p, msg->offset + PROTO_HEADER_LEN, EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_copyout_from(in, &p, scratch, n) != (ev_ssize_t)n)
		return NULL;
	return scratch;
}

/* The int32 in 4 bytes of flat memory. */
static uint32_t decode_int32(const uint8_t *bytes)
{
	struct proto_reader r;

	proto_reader_init(&r, bytes, 4);
	return proto_read_int32(&r);
}

bool proto_msg_replace_int32(struct evbuffer *in, const struct proto_msg *msg, size_t at,
			     uint32_t from, uint32_t to)
{
	uint8_t now[4], want[4] = {to >> 24, to >> 16, to >> 8, to};
	struct evbuffer_iovec vec[4];
	struct evbuffer_ptr p;
	size_t done = 0;
	int n;

	if (msg->len - 4 < at + 4)
		return true; /* too short to hold it: nothing to replace */
	if (msg->body != NULL) {
		uint8_t *field = (uint8_t *)(uintptr_t)msg->body + at;

		if (decode_int32(field) == from)
			memcpy(field, want, sizeof(want));
		return true;
	}
	if (in == NULL || evbuffer_get_length(in) < msg->offset + PROTO_HEADER_LEN + at + 4 ||
	    evbuffer_ptr_set(in, &p, msg->offset + PROTO_HEADER_LEN + at, EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_copyout_from(in, &p, now, sizeof(now)) != (ev_ssize_t)sizeof(now))
		return false;
	if (decode_int32(now) != from)
		return true;
	/* The four bytes may span chains: each part is written where it lies. */
	n = evbuffer_peek(in, sizeof(want), &p, vec, (int)ARRAY_SIZE(vec));
	for (int i = 0; i < n && i < (int)ARRAY_SIZE(vec) && done < sizeof(want); i++) {
		size_t k =
			vec[i].iov_len < sizeof(want) - done ? vec[i].iov_len : sizeof(want) - done;

		memcpy(vec[i].iov_base, want + done, k);
		done += k;
	}
	return true;
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

bool proto_parse_parameter_status(const uint8_t *body, size_t len, const char **name,
				  const char **value)
{
	struct proto_reader r;

	proto_reader_init(&r, body, len);
	*name = proto_read_cstring(&r);
	*value = proto_read_cstring(&r);
	return *name != NULL && *value != NULL;
}

bool startup_params_set(struct startup_params *p, const char *name, const char *value)
{
	for (size_t i = 0; i < p->count; i++) {
		if (strcmp(p->items[i].name, name) != 0)
			continue;
		if (strcmp(p->items[i].value, value) == 0)
			return false;
		free(p->items[i].value);
		p->items[i].value = xstrdup(value);
		return true;
	}
	startup_params_add(p, name, value);
	return true;
}

void startup_params_copy(struct startup_params *dst, const struct startup_params *src)
{
	memset(dst, 0, sizeof(*dst));
	for (size_t i = 0; i < src->count; i++)
		startup_params_add(dst, src->items[i].name, src->items[i].value);
	dst->user = src->user != NULL ? startup_params_get(dst, "user") : NULL;
	dst->database = src->database != NULL ? startup_params_get(dst, "database") : NULL;
	if (src->database != NULL && dst->database == NULL)
		dst->database = dst->user;
}

bool startup_params_equal(const struct startup_params *a, const struct startup_params *b)
{
	if (a->count != b->count)
		return false;
	for (size_t i = 0; i < a->count; i++)
		if (strcmp(a->items[i].name, b->items[i].name) != 0 ||
		    strcmp(a->items[i].value, b->items[i].value) != 0)
			return false;
	return true;
}

struct param_set *param_set_new(const struct startup_params *src)
{
	struct param_set *ps = xmalloc(sizeof(*ps));

	ps->refs = 1;
	startup_params_copy(&ps->params, src);
	return ps;
}

struct param_set *param_set_ref(struct param_set *ps)
{
	ps->refs++;
	return ps;
}

void param_set_unref(struct param_set *ps)
{
	if (ps == NULL || --ps->refs > 0)
		return;
	startup_params_free(&ps->params);
	free(ps);
}

bool param_set_update(struct param_set **ps, const char *name, const char *value)
{
	static const struct startup_params none;
	const char *have = *ps != NULL ? startup_params_get(&(*ps)->params, name) : NULL;

	if (have != NULL && strcmp(have, value) == 0)
		return false;
	if (*ps == NULL || (*ps)->refs > 1) {
		struct param_set *own = param_set_new(*ps != NULL ? &(*ps)->params : &none);

		param_set_unref(*ps);
		*ps = own;
	}
	return startup_params_set(&(*ps)->params, name, value);
}

void proto_put_parameter_statuses(struct evbuffer *out, const struct startup_params *p)
{
	for (size_t i = 0; i < p->count; i++)
		proto_put_parameter_status(out, p->items[i].name, p->items[i].value);
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
		case PROTO_FIELD_SEVERITY_NONLOCALIZED:
			out->severity = value;
			break;
		case PROTO_FIELD_SEVERITY:
			if (out->severity == NULL)
				out->severity = value;
			break;
		case PROTO_FIELD_SQLSTATE:
			out->sqlstate = value;
			break;
		case PROTO_FIELD_MESSAGE_PRIMARY:
			out->message = value;
			break;
		default:
			break;
		}
	}
}

/*
 * Builders write the body into a scratch buffer, then prepend the header: no
 * length patching. They are off the forwarding path, so the scratch
 * allocation does not matter.
 */
/* Messages up to this size are copied into their output, larger ones moved. */
#define PROTO_COPY_MAX 4096

struct msg {
	struct evbuffer *out;
	struct evbuffer *body;
	char type; /* '\0' for startup-phase packets, which have no type byte */
};

static struct msg msg_begin(struct evbuffer *out, char type)
{
	struct msg m = {out, CHECK_ALLOC(evbuffer_new()), type};

	return m;
}

static void msg_end(struct msg m)
{
	uint32_t len = htonl((uint32_t)(evbuffer_get_length(m.body) + 4));

	evbuffer_prepend(m.body, &len, 4);
	if (m.type != '\0')
		evbuffer_prepend(m.body, &m.type, 1);
	/*
	 * A small message is copied into out's last chain: moved, its own chains
	 * (a kilobyte or more each) would hold a 40-byte DataRow, and a console
	 * answer would cost 40 times its size while it waits to be sent.
	 */
	if (evbuffer_get_length(m.body) <= PROTO_COPY_MAX)
		evbuffer_add(m.out, evbuffer_pullup(m.body, -1), evbuffer_get_length(m.body));
	else
		evbuffer_add_buffer(m.out, m.body);
	evbuffer_free(m.body);
}

void proto_put_int32(struct evbuffer *out, uint32_t v)
{
	v = htonl(v);
	evbuffer_add(out, &v, 4);
}

void proto_put_int16(struct evbuffer *out, uint16_t v)
{
	v = htons(v);
	evbuffer_add(out, &v, 2);
}

void proto_put_cstring(struct evbuffer *out, const char *s)
{
	evbuffer_add(out, s, strlen(s) + 1);
}

/* One field of an ErrorResponse or NoticeResponse: its code, then its value. */
static void put_field(struct evbuffer *out, char code, const char *value)
{
	evbuffer_add(out, &code, 1);
	proto_put_cstring(out, value);
}

static void put_fields(struct evbuffer *out, char type, const char *severity, const char *sqlstate,
		       const char *fmt, va_list ap)
{
	struct msg m = msg_begin(out, type);
	char text[1024];

	vsnprintf(text, sizeof(text), fmt, ap);
	put_field(m.body, PROTO_FIELD_SEVERITY, severity);
	put_field(m.body, PROTO_FIELD_SEVERITY_NONLOCALIZED, severity);
	put_field(m.body, PROTO_FIELD_SQLSTATE, sqlstate);
	put_field(m.body, PROTO_FIELD_MESSAGE_PRIMARY, text);
	evbuffer_add(m.body, "", 1);
	msg_end(m);
}

void proto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate,
		     const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_fields(out, PqMsg_ErrorResponse, severity, sqlstate, fmt, ap);
	va_end(ap);
}

void proto_put_error_v(struct evbuffer *out, const char *severity, const char *sqlstate,
		       const char *fmt, va_list ap)
{
	put_fields(out, PqMsg_ErrorResponse, severity, sqlstate, fmt, ap);
}

void proto_put_notice(struct evbuffer *out, const char *sqlstate, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	put_fields(out, PqMsg_NoticeResponse, "NOTICE", sqlstate, fmt, ap);
	va_end(ap);
}

void proto_put_auth(struct evbuffer *out, uint32_t code, const void *data, size_t len)
{
	struct msg m = msg_begin(out, PqMsg_AuthenticationRequest);

	proto_put_int32(m.body, code);
	if (len > 0)
		evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_parameter_status(struct evbuffer *out, const char *name, const char *value)
{
	struct msg m = msg_begin(out, PqMsg_ParameterStatus);

	proto_put_cstring(m.body, name);
	proto_put_cstring(m.body, value);
	msg_end(m);
}

void proto_put_backend_key(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct msg m = msg_begin(out, PqMsg_BackendKeyData);

	proto_put_int32(m.body, pid);
	proto_put_int32(m.body, key);
	msg_end(m);
}

void proto_put_ready(struct evbuffer *out, char tx_status)
{
	struct msg m = msg_begin(out, PqMsg_ReadyForQuery);

	evbuffer_add(m.body, &tx_status, 1);
	msg_end(m);
}

void proto_put_startup(struct evbuffer *out, const struct startup_params *params)
{
	struct msg m = msg_begin(out, '\0');

	proto_put_int32(m.body, PROTO_VERSION_3);
	for (size_t i = 0; i < params->count; i++) {
		proto_put_cstring(m.body, params->items[i].name);
		proto_put_cstring(m.body, params->items[i].value);
	}
	evbuffer_add(m.body, "", 1);
	msg_end(m);
}

void proto_put_cancel(struct evbuffer *out, uint32_t pid, uint32_t key)
{
	struct msg m = msg_begin(out, '\0');

	proto_put_int32(m.body, PROTO_CANCEL_CODE);
	proto_put_int32(m.body, pid);
	proto_put_int32(m.body, key);
	msg_end(m);
}

void proto_put_password(struct evbuffer *out, const char *password)
{
	struct msg m = msg_begin(out, PqMsg_PasswordMessage);

	proto_put_cstring(m.body, password);
	msg_end(m);
}

void proto_put_sasl_initial(struct evbuffer *out, const char *mechanism, const void *data,
			    size_t len)
{
	struct msg m = msg_begin(out, PqMsg_PasswordMessage);

	proto_put_cstring(m.body, mechanism);
	proto_put_int32(m.body, (uint32_t)len);
	evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_sasl_response(struct evbuffer *out, const void *data, size_t len)
{
	struct msg m = msg_begin(out, PqMsg_PasswordMessage);

	evbuffer_add(m.body, data, len);
	msg_end(m);
}

void proto_put_terminate(struct evbuffer *out)
{
	struct msg m = msg_begin(out, PqMsg_Terminate);

	msg_end(m);
}

void proto_put_query(struct evbuffer *out, const char *sql)
{
	struct msg m = msg_begin(out, PqMsg_Query);

	proto_put_cstring(m.body, sql);
	msg_end(m);
}

void proto_put_row_description(struct evbuffer *out, const struct proto_column *cols, size_t ncols)
{
	struct msg m = msg_begin(out, PqMsg_RowDescription);

	proto_put_int16(m.body, (uint16_t)ncols);
	for (size_t i = 0; i < ncols; i++) {
		proto_put_cstring(m.body, cols[i].name);
		proto_put_int32(m.body, 0); /* table oid */
		proto_put_int16(m.body, 0); /* column number */
		proto_put_int32(m.body, cols[i].type_oid);
		proto_put_int16(m.body, (uint16_t)-1); /* type size: reported as variable */
		proto_put_int32(m.body, (uint32_t)-1); /* type modifier */
		proto_put_int16(m.body, 0);            /* text format */
	}
	msg_end(m);
}

void proto_put_data_row(struct evbuffer *out, const char *const *values, size_t nvalues)
{
	struct msg m = msg_begin(out, PqMsg_DataRow);

	proto_put_int16(m.body, (uint16_t)nvalues);
	for (size_t i = 0; i < nvalues; i++) {
		if (values[i] == NULL) {
			proto_put_int32(m.body, (uint32_t)-1);
			continue;
		}
		proto_put_int32(m.body, (uint32_t)strlen(values[i]));
		evbuffer_add(m.body, values[i], strlen(values[i]));
	}
	msg_end(m);
}

void proto_put_command_complete(struct evbuffer *out, const char *tag)
{
	struct msg m = msg_begin(out, PqMsg_CommandComplete);

	proto_put_cstring(m.body, tag);
	msg_end(m);
}

void proto_put_empty_query(struct evbuffer *out)
{
	msg_end(msg_begin(out, PqMsg_EmptyQueryResponse));
}

void proto_put_negotiate_protocol_version(struct evbuffer *out, uint32_t newest_minor,
					  const char *const *options, size_t noptions)
{
	struct msg m = msg_begin(out, PqMsg_NegotiateProtocolVersion);

	proto_put_int32(m.body, newest_minor);
	proto_put_int32(m.body, (uint32_t)noptions);
	for (size_t i = 0; i < noptions; i++)
		proto_put_cstring(m.body, options[i]);
	msg_end(m);
}

void proto_put_encryption_answer(struct evbuffer *out, bool will_encrypt)
{
	char answer = will_encrypt ? PROTO_ENCRYPTION_YES : PROTO_ENCRYPTION_NO;

	evbuffer_add(out, &answer, 1);
}

void proto_put_ssl_request(struct evbuffer *out)
{
	struct msg m = msg_begin(out, '\0');

	proto_put_int32(m.body, PROTO_SSL_CODE);
	msg_end(m);
}

void proto_put_sync(struct evbuffer *out)
{
	msg_end(msg_begin(out, PqMsg_Sync));
}

void proto_put_close_statement(struct evbuffer *out, const char *name)
{
	struct msg m = msg_begin(out, PqMsg_Close);

	evbuffer_add(m.body, &(char){PROTO_TARGET_STATEMENT}, 1);
	proto_put_cstring(m.body, name);
	msg_end(m);
}

void proto_put_message(struct evbuffer *out, char type, const void *body, size_t len)
{
	struct msg m = msg_begin(out, type);

	evbuffer_add(m.body, body, len);
	msg_end(m);
}

void proto_encode_header(uint8_t *dst, char type, size_t body_len)
{
	uint32_t len = htonl((uint32_t)(body_len + 4));

	dst[0] = (uint8_t)type;
	memcpy(dst + 1, &len, 4);
}

uint32_t proto_decode_length(const uint8_t *header)
{
	uint32_t len;

	memcpy(&len, header + 1, 4);
	return ntohl(len);
}
