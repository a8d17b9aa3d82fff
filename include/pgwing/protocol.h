/*
 * The constants of the Postgres wire protocol v3, named as PostgreSQL 17's
 * src/include/libpq/protocol.h names them: one place for every message-type
 * byte, request code and authentication code pgwing reads or writes.
 *
 * The same byte means different messages in the two directions ('D' is
 * Describe from a client and DataRow from a server; 'C' Close and
 * CommandComplete; 'E' Execute and ErrorResponse; 'S' Sync and
 * ParameterStatus; 'H' Flush and CopyOutResponse): use the name for the
 * direction the message travels.
 */
#ifndef PGWING_PROTOCOL_H
#define PGWING_PROTOCOL_H

/* Sent by the frontend (client → pgwing, pgwing → server). */
#define PqMsg_Bind                'B'
#define PqMsg_Close               'C'
#define PqMsg_Describe            'D'
#define PqMsg_Execute             'E'
#define PqMsg_FunctionCall        'F'
#define PqMsg_Flush               'H'
#define PqMsg_Parse               'P'
#define PqMsg_Query               'Q'
#define PqMsg_Sync                'S'
#define PqMsg_Terminate           'X'
#define PqMsg_CopyFail            'f'
#define PqMsg_GSSResponse         'p'
#define PqMsg_PasswordMessage     'p'
#define PqMsg_SASLInitialResponse 'p'
#define PqMsg_SASLResponse        'p'

/* Sent by the backend (server → pgwing, pgwing → client). */
#define PqMsg_ParseComplete            '1'
#define PqMsg_BindComplete             '2'
#define PqMsg_CloseComplete            '3'
#define PqMsg_NotificationResponse     'A'
#define PqMsg_CommandComplete          'C'
#define PqMsg_DataRow                  'D'
#define PqMsg_ErrorResponse            'E'
#define PqMsg_CopyInResponse           'G'
#define PqMsg_CopyOutResponse          'H'
#define PqMsg_EmptyQueryResponse       'I'
#define PqMsg_BackendKeyData           'K'
#define PqMsg_NoticeResponse           'N'
#define PqMsg_AuthenticationRequest    'R'
#define PqMsg_ParameterStatus          'S'
#define PqMsg_RowDescription           'T'
#define PqMsg_FunctionCallResponse     'V'
#define PqMsg_CopyBothResponse         'W'
#define PqMsg_ReadyForQuery            'Z'
#define PqMsg_NoData                   'n'
#define PqMsg_PortalSuspended          's'
#define PqMsg_ParameterDescription     't'
#define PqMsg_NegotiateProtocolVersion 'v'

/* Sent by both. */
#define PqMsg_CopyDone 'c'
#define PqMsg_CopyData 'd'

/* AuthenticationRequest codes (PostgreSQL: AUTH_REQ_SASL_CONT, AUTH_REQ_SASL_FIN). */
#define AUTH_REQ_OK            0
#define AUTH_REQ_PASSWORD      3
#define AUTH_REQ_MD5           5
#define AUTH_REQ_SASL          10
#define AUTH_REQ_SASL_CONTINUE 11
#define AUTH_REQ_SASL_FINAL    12

/* Startup-phase packets (no type byte): the protocol version or a request code. */
#define PROTO_VERSION_3       196608
#define PROTO_CANCEL_CODE     80877102
#define PROTO_SSL_CODE        80877103
#define PROTO_GSSENC_CODE     80877104
#define PROTO_STARTUP_MAX_LEN 10000 /* what Postgres itself accepts for a startup packet */

/* The one-byte answer to SSLRequest and GSSENCRequest. */
#define PROTO_ENCRYPTION_YES 'S'
#define PROTO_ENCRYPTION_NO  'N'

/* The transaction status in ReadyForQuery. */
#define PROTO_TX_IDLE   'I'
#define PROTO_TX_IN     'T' /* in a transaction block */
#define PROTO_TX_FAILED 'E' /* in a failed transaction block */

/* What a Close or Describe names. */
#define PROTO_TARGET_STATEMENT 'S'
#define PROTO_TARGET_PORTAL    'P'

/* ErrorResponse/NoticeResponse field codes (PostgreSQL's PG_DIAG_*). */
#define PROTO_FIELD_SEVERITY              'S'
#define PROTO_FIELD_SEVERITY_NONLOCALIZED 'V'
#define PROTO_FIELD_SQLSTATE              'C'
#define PROTO_FIELD_MESSAGE_PRIMARY       'M'

#endif
