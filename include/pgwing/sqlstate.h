/*
 * Every SQLSTATE pgwing sends or looks for, in one place, named as
 * PostgreSQL's errcodes.txt names them (ERRCODE_X there is SQLSTATE_X here).
 */
#ifndef PGWING_SQLSTATE_H
#define PGWING_SQLSTATE_H

/* Class 08: connection exception. */
#define SQLSTATE_CONNECTION_EXCEPTION "08000"
#define SQLSTATE_CONNECTION_FAILURE   "08006"
#define SQLSTATE_PROTOCOL_VIOLATION   "08P01"

/* Class 0A: feature not supported. */
#define SQLSTATE_FEATURE_NOT_SUPPORTED "0A000"

/* Class 22: data exception. */
#define SQLSTATE_INVALID_PARAMETER_VALUE "22023"

/* Class 25: invalid transaction state. */
#define SQLSTATE_READ_ONLY_SQL_TRANSACTION "25006"

/* Class 28: invalid authorization specification. */
#define SQLSTATE_INVALID_AUTHORIZATION_SPECIFICATION "28000"
#define SQLSTATE_INVALID_PASSWORD                    "28P01"

/* Class 42: syntax error or access rule violation. */
#define SQLSTATE_INSUFFICIENT_PRIVILEGE "42501"
#define SQLSTATE_SYNTAX_ERROR           "42601"
#define SQLSTATE_UNDEFINED_OBJECT       "42704"

/* Class 53: insufficient resources. */
#define SQLSTATE_TOO_MANY_CONNECTIONS "53300"

/* Class 55: object not in prerequisite state. */
#define SQLSTATE_OBJECT_NOT_IN_PREREQUISITE_STATE "55000"

/* Class 57: operator intervention. */
#define SQLSTATE_QUERY_CANCELED     "57014"
#define SQLSTATE_ADMIN_SHUTDOWN     "57P01"
#define SQLSTATE_CANNOT_CONNECT_NOW "57P03"

/* Class XX: internal error. */
#define SQLSTATE_INTERNAL_ERROR "XX000"

#endif
