/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Descriptions for enum tr_err. */
#include "err.h"

static const char *const tr_err_text[TR_E__COUNT] = {
    [TR_OK] = "success",
    [TR_E_NOMEM] = "out of memory",
    [TR_E_INVAL] = "invalid argument or input",
    [TR_E_IO] = "input/output error",
    [TR_E_PROTO] = "protocol error",
    [TR_E_AUTH] = "authentication failed",
    [TR_E_RATELIMIT] = "rate limited",
    [TR_E_TIMEOUT] = "timed out",
    [TR_E_TOOBIG] = "too big",
    [TR_E_CONFIG] = "bad configuration",
    [TR_E_UTF8] = "invalid UTF-8",
    [TR_E_NOTFOUND] = "not found",
    [TR_E_AGAIN] = "try again later",
    [TR_E_CLOSED] = "connection closed",
    [TR_E_FORBIDDEN] = "forbidden",
};

const char *tr_strerror(int err)
{
	if (err < 0 || err >= TR_E__COUNT || !tr_err_text[err])
		return "unknown error";
	return tr_err_text[err];
}
