/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* WebSocket client on the loop: libwebsockets joined to the one libuv loop as a foreign loop.
 * ws:// and wss://, bounded connect and idle (ping, then hang-up) times, messages gathered
 * from fragments into a bounded buffer, text frames queued until the socket is writeable, and
 * a close that ends in exactly one callback. Owns the lws context and every wsi it opens. */
#ifndef TRESTLE_COMMON_WS_H
#define TRESTLE_COMMON_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "err.h"

struct tr_ws_ctx;
struct tr_ws;

/* The connection is up (handshake done); frames may be sent. */
typedef void tr_ws_open_fn(void *arg, struct tr_ws *ws);
/* One whole message (all fragments); msg is borrowed for the call and NUL-terminated. */
typedef void tr_ws_message_fn(void *arg, struct tr_ws *ws, const char *msg, size_t len,
                              bool binary);
/* The connection is gone: err TR_OK after a clean close by the peer, else TR_E_IO,
 * TR_E_TIMEOUT, TR_E_TOOBIG, TR_E_PROTO...; detail is borrowed (may be NULL). After it returns
 * ws is freed: never use it again. Not called after tr_ws_close(). */
typedef void tr_ws_close_fn(void *arg, struct tr_ws *ws, int err, const char *detail);

struct tr_ws_opts {
	const char *url;        /* ws://host[:port]/path or wss://...; copied */
	unsigned idle_ping_s;   /* ping after this many idle seconds; 0 = 30 */
	unsigned idle_hangup_s; /* hang up after this many without a valid frame; 0 = 60 */
	size_t max_message;     /* bytes of one gathered message; 0 = 1 MiB */
	size_t max_queued;      /* bytes waiting to be sent; 0 = 4 MiB */
	bool insecure;          /* wss: accept any certificate (tests only) */
	tr_ws_open_fn *on_open; /* may be NULL */
	tr_ws_message_fn *on_message;
	tr_ws_close_fn *on_close; /* also reports a failed connect */
	void *arg;
};

/* Creates a client context on loop; connect_timeout_s bounds every connect and handshake
 * (0 = 15). NULL with the reason in err. */
struct tr_ws_ctx *tr_ws_ctx_new(uv_loop_t *loop, unsigned connect_timeout_s, char err[TR_ERR_LEN]);
/* Closes every connection still open (without their callbacks) and destroys the context. The
 * loop must keep running for a few turns for lws to close its handles and free the context:
 * at shutdown, run it (UV_RUN_NOWAIT) while tr_ws_ctx_live() is non-zero. NULL is fine. */
void tr_ws_ctx_free(struct tr_ws_ctx *x);
/* Contexts created and not yet completely freed (process-wide). */
unsigned tr_ws_ctx_live(void);

/* Starts connecting; *out is the handle (owned by the module: it is freed after on_close or
 * after tr_ws_close). TR_E_INVAL for a bad URL, TR_E_IO when lws refuses at once (nothing is
 * called back then). */
int tr_ws_open(struct tr_ws_ctx *x, const struct tr_ws_opts *o, struct tr_ws **out) TR_MUST_CHECK;
/* Queues one text frame (copied). TR_E_CLOSED when not open or closing, TR_E_TOOBIG past
 * max_queued. */
int tr_ws_send(struct tr_ws *ws, const char *text, size_t len) TR_MUST_CHECK;
/* Closes with status 1000 once queued frames are written (or at once when not yet open). No
 * callback runs for ws afterwards. */
void tr_ws_close(struct tr_ws *ws);
/* True once the handshake is done and until closing starts. */
bool tr_ws_is_open(const struct tr_ws *ws);

#endif
