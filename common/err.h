/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* One error enum for the whole project, returned as int (Mosquitto's model), with tr_strerror(). */
#ifndef TRESTLE_COMMON_ERR_H
#define TRESTLE_COMMON_ERR_H

#define TR_MUST_CHECK   __attribute__((warn_unused_result))
#define TR_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TR_ERR_LEN      256
#define TR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

enum tr_err {
	TR_OK = 0,
	TR_E_NOMEM,     /* a library allocation failed */
	TR_E_INVAL,     /* bad argument or malformed input */
	TR_E_IO,        /* socket or file error */
	TR_E_PROTO,     /* the peer broke its protocol */
	TR_E_AUTH,      /* login refused */
	TR_E_RATELIMIT, /* told to slow down (429, flood) */
	TR_E_TIMEOUT,   /* no answer in time */
	TR_E_TOOBIG,    /* over a size limit */
	TR_E_CONFIG,    /* bad configuration */
	TR_E_UTF8,      /* not valid UTF-8 */
	TR_E_NOTFOUND,  /* no such thing */
	TR_E_AGAIN,     /* not now: retry later */
	TR_E_CLOSED,    /* the connection is gone */
	TR_E_FORBIDDEN, /* not allowed (ACL, not in channel) */
	TR_E__COUNT
};

/* Returns a static, lower-case description of err; "unknown error" for values out of range. */
const char *tr_strerror(int err);

/* Exit codes (STYLE B4). */
#define TR_EXIT_OK     0
#define TR_EXIT_FAIL   1
#define TR_EXIT_CONFIG 78

#endif
