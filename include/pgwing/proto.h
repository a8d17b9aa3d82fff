/*
 * Postgres wire protocol v3: framing, a bounds-checked reader for message
 * bodies, and builders for the messages pgwing itself sends. Pure functions
 * over evbuffers and byte ranges: no sockets, no global state.
 */
#ifndef PGWING_PROTO_H
#define PGWING_PROTO_H

#include "pgwing/common.h"
#include "pgwing/protocol.h"
#include "pgwing/sqlstate.h"

#include <stdarg.h>

struct evbuffer;

#define PROTO_HEADER_LEN 5 /* type byte + int32 length */

enum proto_frame {
	PROTO_FRAME_NEED_MORE, /* not enough bytes buffered yet */
	PROTO_FRAME_OK,
	PROTO_FRAME_BAD_LENGTH, /* length field below its own size */
	PROTO_FRAME_TOO_LARGE,  /* length above the caller's limit */
};

/*
 * Look at the header of the next regular message without consuming it.
 * *len is the message length as on the wire (counts itself, not the type byte);
 * the whole message occupies 1 + *len bytes.
 */
enum proto_frame proto_peek_message(struct evbuffer *buf, uint32_t max_len, char *type,
				    uint32_t *len);

/*
 * The same, but OK only once the whole message is buffered; *msg then points
 * at it (type byte first), made contiguous. Nothing is consumed: the caller
 * drains or moves 1 + *len bytes.
 */
enum proto_frame proto_next_message(struct evbuffer *buf, uint32_t max_len, char *type,
				    uint32_t *len, uint8_t **msg);

/* The same for a startup-phase packet (no type byte): *len counts itself; *code is the version or
 * request code. */
enum proto_frame proto_peek_startup(struct evbuffer *buf, uint32_t max_len, uint32_t *len,
				    uint32_t *code);

/*
 * The forwarding scan. Walks the messages buffered in `in` and counts how many
 * leading bytes can be moved on as they are, without copying anything: the
 * headers are read in place, chain by chain. Each message header is shown to
 * the inspector; it decides whether the message goes on, whether the scan
 * stops there for the caller to act on it, or whether more bytes are needed
 * first. The inspector must not change `in`. *remaining carries a partly
 * forwarded message across calls: large messages (a 20 MB row, COPY data)
 * stream through without being buffered whole.
 *
 * The inspector may also hold messages back until a later one is buffered (an
 * answer until its ReadyForQuery): from the first message it holds, nothing
 * is movable until one it releases. A hold still on when the scan ends starts
 * the next scan over at the first held message, which is shown again.
 */
struct proto_msg {
	char type;
	uint32_t len;  /* as on the wire: counts itself, not the type byte */
	size_t offset; /* where the message starts in the scanned buffer */
	const uint8_t
		*body; /* the body in place when it is buffered whole in one chain, else NULL */
};

enum proto_inspect {
	PROTO_INSPECT_FORWARD, /* it goes on, or stays held with the others while a hold is on */
	PROTO_INSPECT_HOLD,    /* held, and so is all after it until a release */
	PROTO_INSPECT_RELEASE, /* it goes on, and so does all held before it */
	PROTO_INSPECT_STOP,    /* the caller handles this message (it starts at *movable) */
	PROTO_INSPECT_WAIT,    /* the inspector needs more of this message buffered */
};

typedef enum proto_inspect (*proto_inspect_fn)(void *arg, struct evbuffer *in,
					       const struct proto_msg *msg);

enum proto_scan {
	PROTO_SCAN_DONE,       /* everything movable is counted; wait for more bytes */
	PROTO_SCAN_STOPPED,    /* the inspector stopped at a message */
	PROTO_SCAN_BAD_LENGTH, /* a header with an impossible or oversize length */
};

enum proto_scan proto_scan_messages(struct evbuffer *in, uint32_t max_len, uint32_t *remaining,
				    size_t *movable, proto_inspect_fn inspect, void *arg);
/*
 * The same scan over len bytes in one piece of memory, which is all there is
 * (the inspector is shown in == NULL and every whole message's body).
 */
enum proto_scan proto_scan_bytes(const uint8_t *data, size_t len, uint32_t max_len,
				 uint32_t *remaining, size_t *movable, proto_inspect_fn inspect,
				 void *arg);

/*
 * The body (len - 4 bytes) of a message an inspector was shown: in place when
 * it lies in one chain, else copied into scratch, which must hold it. NULL
 * while the body is not all buffered (in is NULL for a scan of bytes).
 */
const uint8_t *proto_msg_body(struct evbuffer *in, const struct proto_msg *msg, void *scratch);
/*
 * Where the int32 at byte at of the body of a message an inspector was shown
 * equals from, it becomes to, in place (the scanned bytes are the reader's
 * own: no copy). False while those bytes are not all buffered (in is NULL for
 * a scan of bytes).
 */
bool proto_msg_replace_int32(struct evbuffer *in, const struct proto_msg *msg, size_t at,
			     uint32_t from, uint32_t to);

/* Bounds-checked reading of a message body; any overrun sets has_failed and yields zeroes. */
struct proto_reader {
	const uint8_t *pos;
	const uint8_t *end;
	bool has_failed;
};

void proto_reader_init(struct proto_reader *r, const void *data, size_t len);
uint8_t proto_read_byte(struct proto_reader *r);
uint16_t proto_read_int16(struct proto_reader *r);
uint32_t proto_read_int32(struct proto_reader *r);
/* A NUL-terminated string inside the body; NULL (and has_failed) if unterminated. */
const char *proto_read_cstring(struct proto_reader *r);
/* n raw bytes; NULL (and has_failed) if fewer remain. */
const uint8_t *proto_read_bytes(struct proto_reader *r, size_t n);
size_t proto_reader_remaining(const struct proto_reader *r);
/* Their writing counterparts, for bodies and pgwing's own formats: big-endian, NUL-terminated. */
void proto_put_int32(struct evbuffer *out, uint32_t v);
void proto_put_int16(struct evbuffer *out, uint16_t v);
void proto_put_cstring(struct evbuffer *out, const char *s);

/* The parameters of a StartupMessage, in the order the client sent them. */
struct startup_param {
	char *name;
	char *value;
};

struct startup_params {
	struct startup_param *items;
	size_t count;
	const char *user;     /* points into items; never NULL after a successful parse */
	const char *database; /* defaults to user, as Postgres does */
};

/*
 * Parse the body of a StartupMessage (after the length and version).
 * Returns false with a message for the client on malformed input or a missing user.
 */
bool proto_parse_startup(const uint8_t *body, size_t len, struct startup_params *out,
			 const char **err);
void startup_params_free(struct startup_params *p);
const char *startup_params_get(const struct startup_params *p, const char *name);
/* The name and value of a ParameterStatus body (pointers into it); false if malformed. */
bool proto_parse_parameter_status(const uint8_t *body, size_t len, const char **name,
				  const char **value);
/* Add or replace name; returns false when it already had this value. */
bool startup_params_set(struct startup_params *p, const char *name, const char *value);
/* A deep copy; user and database point into the copy. */
void startup_params_copy(struct startup_params *dst, const struct startup_params *src);
/* The same names with the same values in the same order. */
bool startup_params_equal(const struct startup_params *a, const struct startup_params *b);

/* The fields of an ErrorResponse/NoticeResponse pgwing needs. Pointers into the body. */
struct proto_error_fields {
	const char *severity; /* non-localized (V) if present, else S */
	const char *sqlstate;
	const char *message;
};

bool proto_parse_error(const uint8_t *body, size_t len, struct proto_error_fields *out);

/*
 * Builders: each appends one complete message to out.
 */
void proto_put_error(struct evbuffer *out, const char *severity, const char *sqlstate,
		     const char *fmt, ...) PRINTF_LIKE(4, 5);
/* The same with a va_list, for a module's own error function. */
void proto_put_error_v(struct evbuffer *out, const char *severity, const char *sqlstate,
		       const char *fmt, va_list ap) PRINTF_LIKE(4, 0);
void proto_put_notice(struct evbuffer *out, const char *sqlstate, const char *fmt, ...)
	PRINTF_LIKE(3, 4);
/* AuthenticationXXX ('R'): code followed by optional data. */
void proto_put_auth(struct evbuffer *out, uint32_t code, const void *data, size_t len);
void proto_put_parameter_status(struct evbuffer *out, const char *name, const char *value);
/*
 * A reference-counted parameter list: the clients a pool welcomed with the same
 * ParameterStatus set share one, and a client copies it only when a value it
 * is told changes.
 */
struct param_set {
	int refs;
	struct startup_params params;
};

/* A copy of src, with one reference. */
struct param_set *param_set_new(const struct startup_params *src);
struct param_set *param_set_ref(struct param_set *ps);
/* NULL is fine. */
void param_set_unref(struct param_set *ps);
/*
 * Set name to value in *ps (NULL: a new, empty set), copying *ps first if it is
 * shared; returns false when it already had this value.
 */
bool param_set_update(struct param_set **ps, const char *name, const char *value);

/* One ParameterStatus per name/value of p, in order. */
void proto_put_parameter_statuses(struct evbuffer *out, const struct startup_params *p);
void proto_put_backend_key(struct evbuffer *out, uint32_t pid, uint32_t key);
void proto_put_ready(struct evbuffer *out, char tx_status);
void proto_put_startup(struct evbuffer *out, const struct startup_params *params);
void proto_put_cancel(struct evbuffer *out, uint32_t pid, uint32_t key);
/* PasswordMessage ('p') carrying a NUL-terminated string. */
void proto_put_password(struct evbuffer *out, const char *password);
/* SASLInitialResponse ('p'): mechanism, then the client-first-message. */
void proto_put_sasl_initial(struct evbuffer *out, const char *mechanism, const void *data,
			    size_t len);
/* SASLResponse ('p'): raw bytes. */
void proto_put_sasl_response(struct evbuffer *out, const void *data, size_t len);
void proto_put_terminate(struct evbuffer *out);
/* A simple Query ('Q'). */
void proto_put_query(struct evbuffer *out, const char *sql);

/* Result sets, for the admin console. */
struct proto_column {
	const char *name;
	uint32_t type_oid; /* PROTO_OID_* */
};

#define PROTO_OID_BOOL        16
#define PROTO_OID_INT8        20
#define PROTO_OID_INT4        23
#define PROTO_OID_TEXT        25
#define PROTO_OID_FLOAT8      701
#define PROTO_OID_TIMESTAMPTZ 1184

void proto_put_row_description(struct evbuffer *out, const struct proto_column *cols, size_t ncols);
/* values[i] == NULL sends SQL NULL. */
void proto_put_data_row(struct evbuffer *out, const char *const *values, size_t nvalues);
void proto_put_command_complete(struct evbuffer *out, const char *tag);
/* EmptyQueryResponse ('I'): the answer to a query of only blanks. */
void proto_put_empty_query(struct evbuffer *out);

/*
 * NegotiateProtocolVersion ('v'): the newest minor version of protocol 3 pgwing
 * speaks, and the protocol options ("_pq_.*") it did not recognize.
 */
void proto_put_negotiate_protocol_version(struct evbuffer *out, uint32_t newest_minor,
					  const char *const *options, size_t noptions);
/* The one-byte answer to SSLRequest or GSSENCRequest: 'S' (handshake next) or 'N'. */
void proto_put_encryption_answer(struct evbuffer *out, bool will_encrypt);
/* SSLRequest: a startup-phase packet with the SSL request code. */
void proto_put_ssl_request(struct evbuffer *out);
/* Sync ('S', from the frontend). */
void proto_put_sync(struct evbuffer *out);
/* Close of the prepared statement name (extended protocol; answered by CloseComplete). */
void proto_put_close_statement(struct evbuffer *out, const char *name);
/* Any message whose body is already encoded (a client's Parse, copied to replay it). */
void proto_put_message(struct evbuffer *out, char type, const void *body, size_t len);
/*
 * The header of a message with a body_len-byte body into dst (PROTO_HEADER_LEN
 * bytes), for a message kept in flat memory rather than an evbuffer.
 */
void proto_encode_header(uint8_t *dst, char type, size_t body_len);
/* The length field of a header in flat memory (what proto_encode_header wrote): 4 + body. */
uint32_t proto_decode_length(const uint8_t *header);

#endif
