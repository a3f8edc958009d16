/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* HTTP client on the loop: libcurl multi driven by uv_poll/uv_timer (the shape of curl's
 * multi-uv example). Every request is bounded (timeout, response size); 429 and 503 are
 * translated once here into TR_E_RATELIMIT with the Retry-After delay. Owns curl handles. */
#ifndef TRESTLE_COMMON_HTTP_H
#define TRESTLE_COMMON_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "err.h"

struct tr_http;
struct tr_http_call;

struct tr_http_req {
	const char *method;         /* "GET", "POST", "PUT", "DELETE", "PATCH"... */
	const char *url;            /* never logged with its query string */
	const char *const *headers; /* "Name: value" lines, may be NULL */
	size_t n_headers;
	const void *body; /* copied; may be NULL */
	size_t body_len;
	unsigned timeout_ms; /* whole request; 0 = 30000 */
	size_t max_response; /* bytes of body kept; 0 = 4 MiB; more fails with TOOBIG */
};

struct tr_http_resp {
	int err;          /* TR_OK when a response (any status) arrived; else TR_E_TIMEOUT,
	                   * TR_E_IO, TR_E_TOOBIG...; TR_E_RATELIMIT for 429 (and 503 with
	                   * Retry-After) */
	long status;      /* HTTP status, 0 without a response */
	const char *body; /* NUL-terminated, "" when empty; borrowed for the callback */
	size_t len;
	double retry_after_s; /* Retry-After (seconds or HTTP date) when present, else -1 */
	const char *detail;   /* curl's words when err != TR_OK */
	const struct tr_http_call *call;
};

/* Called once per request unless cancelled first; resp is borrowed for the call. */
typedef void tr_http_done_fn(void *arg, const struct tr_http_resp *resp);

struct tr_http *tr_http_new(uv_loop_t *loop);
/* Starts a request. *call (may be NULL) can be cancelled until done runs. */
int tr_http_request(struct tr_http *h, const struct tr_http_req *req, tr_http_done_fn *done,
                    void *arg, struct tr_http_call **call) TR_MUST_CHECK;
/* A response header of the call's response (case-insensitive name), borrowed; NULL if absent.
 * Valid inside the done callback only. */
const char *tr_http_header(const struct tr_http_call *call, const char *name);
/* The callback will not run; memory is freed. */
void tr_http_cancel(struct tr_http_call *call);
/* Cancels every request and closes handles; frees h once they are closed. */
void tr_http_free(struct tr_http *h);
/* Requests in flight. */
unsigned tr_http_active(const struct tr_http *h);

/* The enum tr_err for an HTTP error status: 401 TR_E_AUTH, 403 TR_E_FORBIDDEN, 404
 * TR_E_NOTFOUND, 413 TR_E_TOOBIG, 429 TR_E_RATELIMIT, other 5xx TR_E_IO, else TR_E_PROTO. */
int tr_http_status_err(long status);

/* Percent-encodes s for a URL path segment or query value; newly allocated. */
char *tr_http_escape(const char *s);

#endif
