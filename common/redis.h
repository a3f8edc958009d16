/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* hiredis async on the libuv loop (router and trestle-ctl only). Connects with AUTH and SELECT
 * from the redis:// URL, reconnects with backoff, and arms its own timer because hiredis 0.14
 * has no async timeouts: a command unanswered for timeout_ms drops the connection, which fails
 * every pending command (callback with reply NULL) so the caller can retry them in order. */
#ifndef TRESTLE_COMMON_REDIS_H
#define TRESTLE_COMMON_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "err.h"

struct tr_redis;

/* reply: borrowed for the call; NULL when the command failed for want of a connection. A
 * Redis error arrives as a reply of type REDIS_REPLY_ERROR. */
typedef void tr_redis_reply_fn(struct tr_redis *r, redisReply *reply, void *arg);
/* The connection came up (ready: AUTH/SELECT done) or went down. */
typedef void tr_redis_state_fn(void *arg, bool ready);

struct tr_redis_opts {
	const char *url;     /* TRESTLE_REDIS_URL */
	unsigned timeout_ms; /* connect and command timeout; 0 = 5000 */
	tr_redis_state_fn *on_state;
	void *arg;
};

struct tr_redis *tr_redis_new(uv_loop_t *loop, const struct tr_redis_opts *o, char err[TR_ERR_LEN]);
int tr_redis_start(struct tr_redis *r) TR_MUST_CHECK;
bool tr_redis_ready(const struct tr_redis *r);
/* Sends one command (argv/argvlen copied by hiredis). TR_E_CLOSED when not ready: the callback
 * is then not called. */
int tr_redis_cmd(struct tr_redis *r, tr_redis_reply_fn *cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen) TR_MUST_CHECK;
/* Commands sent and not yet answered. */
unsigned tr_redis_pending(const struct tr_redis *r);
unsigned long tr_redis_reconnects(const struct tr_redis *r);
/* Disconnects (pending callbacks get NULL), closes handles; done is called once all are closed. */
void tr_redis_close(struct tr_redis *r, void (*done)(void *arg), void *arg);
void tr_redis_free(struct tr_redis *r);

#endif
