/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* hiredis async on the loop through hiredis's libuv adapter, plus what hiredis 0.14 lacks:
 * connect and command timeouts (one watchdog timer over a FIFO of send times; replies come
 * in order), AUTH/SELECT before "ready", and reconnects with backoff. */
#include <hiredis/async.h>
#include <hiredis/adapters/libuv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "backoff.h"
#include "env.h"
#include "log.h"
#include "redis.h"
#include "url.h"

struct tr_redis_call {
	struct tr_redis *r;
	tr_redis_reply_fn *cb;
	void *arg;
};

struct tr_redis {
	uv_loop_t *loop;
	struct tr_url url;
	unsigned timeout_ms;
	tr_redis_state_fn *on_state;
	void *arg;
	redisAsyncContext *ac;
	bool connected; /* TCP up */
	bool ready;     /* AUTH and SELECT done */
	bool closing;
	bool logged_down;
	uint64_t connect_started;
	uint64_t *sent; /* ring of send times (ms) of unanswered commands */
	size_t sent_cap, sent_head, sent_len;
	unsigned setup_pending;
	unsigned long reconnects, connects;
	struct tr_backoff backoff;
	uv_timer_t watchdog, retry;
	int handles_open;
	void (*done)(void *);
	void *done_arg;
};

static void tr_redis_connect(struct tr_redis *r);
static void tr_redis_on_retry(uv_timer_t *t);

static void tr_redis_sent_push(struct tr_redis *r)
{
	if (r->sent_len == r->sent_cap) {
		size_t cap = r->sent_cap ? r->sent_cap * 2 : 64;
		uint64_t *n = tr_xmalloc(cap * sizeof(*n));
		for (size_t i = 0; i < r->sent_len; i++)
			n[i] = r->sent[(r->sent_head + i) % r->sent_cap];
		free(r->sent);
		r->sent = n;
		r->sent_cap = cap;
		r->sent_head = 0;
	}
	r->sent[(r->sent_head + r->sent_len) % r->sent_cap] = uv_now(r->loop);
	r->sent_len++;
}

static void tr_redis_sent_pop(struct tr_redis *r)
{
	if (!r->sent_len)
		return;
	r->sent_head = (r->sent_head + 1) % r->sent_cap;
	r->sent_len--;
}

static void tr_redis_set_down(struct tr_redis *r, const char *why)
{
	bool was = r->ready;
	r->ac = NULL;
	r->connected = false;
	r->ready = false;
	r->sent_len = 0;
	r->sent_head = 0;
	if (!r->logged_down) {
		tr_warn("redis %s host=%s port=%d reason=\"%s\"; retrying",
		        was ? "connection lost" : "unreachable", r->url.host, r->url.port, why);
		r->logged_down = true;
	}
	if (was && r->on_state)
		r->on_state(r->arg, false);
	if (!r->closing)
		uv_timer_start(&r->retry, tr_redis_on_retry, tr_backoff_next(&r->backoff), 0);
}

static void tr_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct tr_redis *r = ac->data;
	if (r->ac != ac)
		return;
	tr_redis_set_down(r,
	                  status == REDIS_OK ? "closed" : (ac->errstr[0] ? ac->errstr : "error"));
}

static void tr_redis_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	(void)ac;
	struct tr_redis_call *call = privdata;
	struct tr_redis *r = call->r;
	if (reply)
		tr_redis_sent_pop(r);
	if (call->cb)
		call->cb(r, reply, call->arg);
	free(call);
}

static void tr_redis_setup_reply(struct tr_redis *r, redisReply *reply, void *arg)
{
	const char *what = arg;
	if (!reply)
		return;
	if (reply->type == REDIS_REPLY_ERROR) {
		tr_error("redis %s refused: %.*s", what, (int)reply->len, reply->str);
		/* Wrong password or db: keep retrying, the admin may fix it. */
		if (r->ac)
			redisAsyncDisconnect(r->ac);
		return;
	}
	if (--r->setup_pending == 0) {
		r->ready = true;
		r->logged_down = false;
		if (r->connects++)
			r->reconnects++;
		tr_backoff_reset(&r->backoff);
		tr_info("redis connected host=%s port=%d", r->url.host, r->url.port);
		if (r->on_state)
			r->on_state(r->arg, true);
	}
}

static int tr_redis_send(struct tr_redis *r, tr_redis_reply_fn *cb, void *arg, int argc,
                         const char **argv, const size_t *argvlen)
{
	struct tr_redis_call *call = tr_xmalloc(sizeof(*call));
	call->r = r;
	call->cb = cb;
	call->arg = arg;
	if (redisAsyncCommandArgv(r->ac, tr_redis_reply, call, argc, argv, argvlen) != REDIS_OK) {
		free(call);
		return TR_E_CLOSED;
	}
	tr_redis_sent_push(r);
	return TR_OK;
}

static void tr_redis_on_connect(const redisAsyncContext *ac, int status)
{
	struct tr_redis *r = ac->data;
	if (r->ac != ac)
		return;
	if (status != REDIS_OK) {
		/* hiredis frees the context after this callback. */
		tr_redis_set_down(r, ac->errstr[0] ? ac->errstr : "connect failed");
		return;
	}
	r->connected = true;
	r->setup_pending = 1;
	int rc = TR_OK;
	if (r->url.password) {
		r->setup_pending++;
		const char *argv[3] = {"AUTH", r->url.user ? r->url.user : r->url.password,
		                       r->url.password};
		rc =
		    tr_redis_send(r, tr_redis_setup_reply, "AUTH", r->url.user ? 3 : 2, argv, NULL);
	}
	const char *db = r->url.path && *r->url.path ? r->url.path : "0";
	const char *sel[2] = {"SELECT", db};
	if (rc == TR_OK)
		rc = tr_redis_send(r, tr_redis_setup_reply, "SELECT", 2, sel, NULL);
	if (rc != TR_OK)
		redisAsyncDisconnect(r->ac);
}

static void tr_redis_connect(struct tr_redis *r)
{
	if (r->closing || r->ac)
		return;
	redisAsyncContext *ac = redisAsyncConnect(r->url.host, r->url.port);
	if (!ac) {
		uv_timer_start(&r->retry, tr_redis_on_retry, tr_backoff_next(&r->backoff), 0);
		return;
	}
	if (ac->err) {
		char why[128];
		snprintf(why, sizeof(why), "%s", ac->errstr);
		redisAsyncFree(ac);
		tr_redis_set_down(r, why);
		return;
	}
	ac->data = r;
	r->ac = ac;
	r->connect_started = uv_now(r->loop);
	redisLibuvAttach(ac, r->loop);
	redisAsyncSetConnectCallback(ac, tr_redis_on_connect);
	redisAsyncSetDisconnectCallback(ac, tr_redis_on_disconnect);
}

static void tr_redis_on_retry(uv_timer_t *t)
{
	tr_redis_connect(t->data);
}

static void tr_redis_on_watchdog(uv_timer_t *t)
{
	struct tr_redis *r = t->data;
	if (!r->ac)
		return;
	uint64_t now = uv_now(r->loop);
	bool stuck = false;
	if (!r->connected &&
	    now - r->connect_started > (r->timeout_ms < 2000 ? r->timeout_ms : 2000))
		stuck = true;
	if (r->sent_len && now - r->sent[r->sent_head] > r->timeout_ms)
		stuck = true;
	if (!stuck)
		return;
	if (r->connected)
		tr_warn("redis did not answer within %u ms; reconnecting", r->timeout_ms);
	else
		tr_debug("redis connect attempt timed out");
	redisAsyncContext *ac = r->ac;
	/* Fails every pending command with a NULL reply, then our disconnect callback runs
	 * only if the context was connected; make sure we go down either way. */
	r->ac = NULL;
	redisAsyncFree(ac);
	tr_redis_set_down(r, "timeout");
}

struct tr_redis *tr_redis_new(uv_loop_t *loop, const struct tr_redis_opts *o, char err[TR_ERR_LEN])
{
	struct tr_redis *r = tr_xcalloc(1, sizeof(*r));
	char uerr[TR_ERR_LEN];
	if (tr_url_parse(o->url, &r->url, uerr) != TR_OK) {
		snprintf(err, TR_ERR_LEN, "TRESTLE_REDIS_URL: %.200s", uerr);
		goto fail;
	}
	if (strcmp(r->url.scheme, "redis") != 0) {
		snprintf(err, TR_ERR_LEN, "TRESTLE_REDIS_URL: scheme must be redis");
		goto fail;
	}
	if (r->url.path && *r->url.path) {
		long db;
		if (tr_parse_long(r->url.path, 0, 1000000, &db) != TR_OK) {
			snprintf(err, TR_ERR_LEN, "TRESTLE_REDIS_URL: database must be a number");
			goto fail;
		}
	}
	r->loop = loop;
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : 5000;
	r->on_state = o->on_state;
	r->arg = o->arg;
	tr_backoff_init(&r->backoff, &tr_backoff_connect);
	uv_timer_init(loop, &r->watchdog);
	uv_timer_init(loop, &r->retry);
	r->watchdog.data = r;
	r->retry.data = r;
	r->handles_open = 2;
	return r;
fail:
	tr_url_cleanup(&r->url);
	free(r);
	return NULL;
}

int tr_redis_start(struct tr_redis *r)
{
	char *safe = tr_url_redacted(&r->url);
	tr_info("redis %s", safe);
	free(safe);
	uv_timer_start(&r->watchdog, tr_redis_on_watchdog, 250, 250);
	tr_redis_connect(r);
	return TR_OK;
}

bool tr_redis_ready(const struct tr_redis *r)
{
	return r->ready;
}

int tr_redis_cmd(struct tr_redis *r, tr_redis_reply_fn *cb, void *arg, int argc, const char **argv,
                 const size_t *argvlen)
{
	if (!r->ready || !r->ac)
		return TR_E_CLOSED;
	return tr_redis_send(r, cb, arg, argc, argv, argvlen);
}

unsigned tr_redis_pending(const struct tr_redis *r)
{
	return (unsigned)r->sent_len;
}

unsigned long tr_redis_reconnects(const struct tr_redis *r)
{
	return r->reconnects;
}

static void tr_redis_handle_closed(uv_handle_t *h)
{
	struct tr_redis *r = h->data;
	if (--r->handles_open == 0 && r->done)
		r->done(r->done_arg);
}

void tr_redis_close(struct tr_redis *r, void (*done)(void *arg), void *arg)
{
	if (r->closing)
		return;
	r->closing = true;
	r->done = done;
	r->done_arg = arg;
	if (r->ac) {
		redisAsyncContext *ac = r->ac;
		r->ac = NULL;
		redisAsyncFree(ac);
	}
	r->ready = false;
	uv_timer_stop(&r->watchdog);
	uv_timer_stop(&r->retry);
	uv_close((uv_handle_t *)&r->watchdog, tr_redis_handle_closed);
	uv_close((uv_handle_t *)&r->retry, tr_redis_handle_closed);
}

void tr_redis_free(struct tr_redis *r)
{
	if (!r)
		return;
	tr_url_cleanup(&r->url);
	free(r->sent);
	free(r);
}
