/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* WebSocket client on libwebsockets 4.1.6 with the foreign libuv loop (lws's
 * minimal-*-eventlib-foreign examples). A struct tr_ws lives until lws destroys its wsi
 * (LWS_CALLBACK_WSI_DESTROY), so lws never calls back into freed memory; user callbacks are
 * cut off at tr_ws_close() instead of being checked against a liveness list. */
#include <libwebsockets.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "log.h"
#include "ws.h"

struct tr_ws_frame {
	struct tr_ws_frame *next;
	size_t len;
	unsigned char data[]; /* LWS_PRE bytes of headroom, then the payload */
};

struct tr_ws_ctx {
	struct lws_context *lws; /* lws writes NULL here once destruction is complete */
	bool destroying;
	uv_timer_t reaper;
	unsigned reaps;
};

static unsigned tr_ws_live_ctx;

struct tr_ws {
	struct tr_ws_ctx *x;
	struct lws *wsi;
	struct tr_ws_opts o; /* callbacks; o.url is NULL (the copy is in url) */
	char *url;
	lws_retry_bo_t retry; /* must outlive the wsi: lws keeps a pointer */
	struct tr_buf msg;
	bool msg_binary;
	struct tr_ws_frame *head, *tail;
	size_t queued;
	bool open, closing, user_closed, notified, in_connect, wsi_gone, destroyed;
	int err;            /* why we are closing, reported in on_close */
	const char *detail; /* static */
};

static void tr_ws_frames_free(struct tr_ws *ws)
{
	while (ws->head) {
		struct tr_ws_frame *f = ws->head;
		ws->head = f->next;
		free(f);
	}
	ws->tail = NULL;
	ws->queued = 0;
}

static void tr_ws_destroy(struct tr_ws *ws)
{
	tr_ws_frames_free(ws);
	tr_buf_cleanup(&ws->msg);
	free(ws->url);
	free(ws);
}

/* Reports the end once, unless the user closed first or the context is going away. */
static void tr_ws_notify_close(struct tr_ws *ws, int err, const char *detail)
{
	if (ws->notified || ws->user_closed || ws->x->destroying || ws->in_connect)
		return;
	ws->notified = true;
	ws->open = false;
	if (ws->o.on_close)
		ws->o.on_close(ws->o.arg, ws, err, detail);
}

static int tr_ws_receive(struct tr_ws *ws, struct lws *wsi, const void *in, size_t len)
{
	if (ws->user_closed)
		return 0;
	if (ws->msg.len == 0)
		ws->msg_binary = lws_frame_is_binary(wsi) != 0;
	if (tr_buf_append(&ws->msg, in, len) != TR_OK) {
		ws->err = TR_E_TOOBIG;
		ws->detail = "message over the size limit";
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
		return -1;
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	if (ws->o.on_message)
		ws->o.on_message(ws->o.arg, ws, tr_buf_str(&ws->msg), ws->msg.len, ws->msg_binary);
	tr_buf_reset(&ws->msg);
	return 0;
}

static int tr_ws_writeable(struct tr_ws *ws, struct lws *wsi)
{
	struct tr_ws_frame *f = ws->head;
	if (f) {
		int n = lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
		if (n < (int)f->len) {
			ws->err = TR_E_IO;
			ws->detail = "write failed";
			return -1;
		}
		ws->head = f->next;
		if (!ws->head)
			ws->tail = NULL;
		ws->queued -= f->len;
		free(f);
		if (ws->head || ws->closing)
			lws_callback_on_writable(wsi);
		return 0;
	}
	if (ws->closing) {
		lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
		return -1;
	}
	return 0;
}

static int tr_ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                          size_t len)
{
	(void)user;
	struct tr_ws *ws = wsi ? lws_get_opaque_user_data(wsi) : NULL;
	if (!ws)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		ws->open = true;
		if (ws->closing || ws->head) {
			lws_callback_on_writable(wsi);
		}
		if (!ws->user_closed && ws->o.on_open)
			ws->o.on_open(ws->o.arg, ws);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		ws->wsi_gone = true;
		tr_ws_notify_close(ws, TR_E_IO, in ? (const char *)in : "connect failed");
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		return tr_ws_receive(ws, wsi, in, len);
	case LWS_CALLBACK_CLIENT_WRITEABLE:
		return tr_ws_writeable(ws, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (ws->err == TR_OK)
			ws->detail = "closed by peer";
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		ws->wsi_gone = true;
		tr_ws_notify_close(ws, ws->err, ws->detail ? ws->detail : "closed");
		break;
	case LWS_CALLBACK_WSI_DESTROY:
		lws_set_opaque_user_data(wsi, NULL);
		ws->wsi = NULL;
		if (ws->in_connect) {
			ws->wsi_gone = true;
			ws->destroyed = true;
			break;
		}
		/* A wsi that died without CLIENT_CLOSED (e.g. a timeout before the handshake) still
		 * owes its owner an on_close. */
		tr_ws_notify_close(ws, ws->open ? TR_E_IO : TR_E_TIMEOUT,
		                   ws->open ? "connection lost" : "connect timed out");
		tr_ws_destroy(ws);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols tr_ws_protocols[] = {
    {.name = "trestle-ws", .callback = tr_ws_callback},
    {0},
};

static void tr_ws_lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	tr_log(level == LLL_ERR ? TR_LOG_WARN : TR_LOG_DEBUG, NULL, "lws: %.*s", (int)n, line);
}

struct tr_ws_ctx *tr_ws_ctx_new(uv_loop_t *loop, unsigned connect_timeout_s, char err[TR_ERR_LEN])
{
	lws_set_log_level(LLL_ERR, tr_ws_lws_log);
	struct tr_ws_ctx *x = tr_xcalloc(1, sizeof(*x));
	void *loops[1] = {loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = tr_ws_protocols;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	info.foreign_loops = loops;
	info.timeout_secs = connect_timeout_s ? connect_timeout_s : 15;
	info.connect_timeout_secs = info.timeout_secs;
	info.user = x;
	info.pcontext = &x->lws;
	x->lws = lws_create_context(&info);
	if (!x->lws) {
		snprintf(err, TR_ERR_LEN, "libwebsockets: cannot create a client context on libuv");
		free(x);
		return NULL;
	}
	uv_timer_init(loop, &x->reaper);
	x->reaper.data = x;
	tr_ws_live_ctx++;
	return x;
}

static void tr_ws_reaper_closed(uv_handle_t *h)
{
	free(h->data);
	tr_ws_live_ctx--;
}

static void tr_ws_count_closing(uv_handle_t *h, void *arg)
{
	if (uv_is_closing(h))
		(*(unsigned *)arg)++;
}

/* With a foreign loop, lws_context_destroy() only starts closing lws's uv handles; once the loop
 * has run every close callback, a second call frees the context (writing NULL through
 * pcontext) and unloads the event-lib plugin, so it must not come earlier. Bounded retries. */
static void tr_ws_reaper(uv_timer_t *t)
{
	struct tr_ws_ctx *x = t->data;
	unsigned closing = 0;
	uv_walk(t->loop, tr_ws_count_closing, &closing);
	if (closing && ++x->reaps < 1000)
		return;
	if (x->lws)
		lws_context_destroy(x->lws);
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, tr_ws_reaper_closed);
}

void tr_ws_ctx_free(struct tr_ws_ctx *x)
{
	if (!x)
		return;
	x->destroying = true;
	lws_context_destroy(x->lws);
	uv_timer_start(&x->reaper, tr_ws_reaper, 1, 1);
}

unsigned tr_ws_ctx_live(void)
{
	return tr_ws_live_ctx;
}

int tr_ws_open(struct tr_ws_ctx *x, const struct tr_ws_opts *o, struct tr_ws **out)
{
	*out = NULL;
	if (!x || !o || !o->url || !o->on_message)
		return TR_E_INVAL;
	bool tls = strncmp(o->url, "wss://", 6) == 0;
	if (!tls && strncmp(o->url, "ws://", 5) != 0)
		return TR_E_INVAL;
	const char *auth = o->url + (tls ? 6 : 5);
	size_t alen = strcspn(auth, "/?#");
	if (alen == 0)
		return TR_E_INVAL;
	char *copy = tr_xstrdup(o->url);
	const char *prot = NULL, *ads = NULL, *path = NULL;
	int port = 0;
	if (lws_parse_uri(copy, &prot, &ads, &port, &path) || !ads || !*ads) {
		free(copy);
		return TR_E_INVAL;
	}
	if (!memchr(auth, ':', alen) || (auth[0] == '[' && !strstr(auth, "]:")))
		port = tls ? 443 : 80;
	/* lws_parse_uri drops the path's leading '/'. */
	char *fullpath = tr_xasprintf("/%s", path ? path : "");

	struct tr_ws *ws = tr_xcalloc(1, sizeof(*ws));
	ws->x = x;
	ws->o = *o;
	ws->o.url = NULL;
	ws->url = copy;
	if (!ws->o.max_message)
		ws->o.max_message = 1024 * 1024;
	if (!ws->o.max_queued)
		ws->o.max_queued = 4 * 1024 * 1024;
	ws->retry.secs_since_valid_ping = (uint16_t)(o->idle_ping_s ? o->idle_ping_s : 30);
	ws->retry.secs_since_valid_hangup = (uint16_t)(o->idle_hangup_s ? o->idle_hangup_s : 60);
	tr_buf_init(&ws->msg, ws->o.max_message);

	struct lws_client_connect_info ci;
	memset(&ci, 0, sizeof(ci));
	ci.context = x->lws;
	ci.address = ads;
	ci.port = port;
	ci.path = fullpath;
	ci.host = ads;
	ci.origin = ads;
	ci.protocol = NULL;
	ci.local_protocol_name = tr_ws_protocols[0].name;
	ci.ssl_connection = tls ? LCCSCF_USE_SSL : 0;
	if (tls && o->insecure)
		ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED |
		                     LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK | LCCSCF_ALLOW_EXPIRED |
		                     LCCSCF_ALLOW_INSECURE;
	ci.opaque_user_data = ws;
	ci.retry_and_idle_policy = &ws->retry;
	ci.pwsi = &ws->wsi;

	ws->in_connect = true;
	struct lws *wsi = lws_client_connect_via_info(&ci);
	ws->in_connect = false;
	free(fullpath);
	if (!wsi || ws->wsi_gone) {
		/* lws failed synchronously (it may already have destroyed the wsi). */
		if (wsi && !ws->destroyed)
			lws_set_opaque_user_data(wsi, NULL);
		tr_ws_destroy(ws);
		return TR_E_IO;
	}
	ws->wsi = wsi;
	*out = ws;
	return TR_OK;
}

int tr_ws_send(struct tr_ws *ws, const char *text, size_t len)
{
	if (!ws || ws->closing || ws->user_closed || ws->notified || !ws->wsi)
		return TR_E_CLOSED;
	if (ws->queued + len > ws->o.max_queued)
		return TR_E_TOOBIG;
	struct tr_ws_frame *f = tr_xmalloc(sizeof(*f) + LWS_PRE + len + 1);
	f->next = NULL;
	f->len = len;
	memcpy(f->data + LWS_PRE, text, len);
	if (ws->tail)
		ws->tail->next = f;
	else
		ws->head = f;
	ws->tail = f;
	ws->queued += len;
	if (ws->open)
		lws_callback_on_writable(ws->wsi);
	return TR_OK;
}

void tr_ws_close(struct tr_ws *ws)
{
	if (!ws || ws->user_closed)
		return;
	ws->user_closed = true;
	if (ws->notified || !ws->wsi)
		return; /* lws already tore it down; WSI_DESTROY frees ws */
	if (ws->open) {
		ws->closing = true;
		lws_callback_on_writable(ws->wsi);
		/* A peer that never lets us flush still gets hung up on. */
		lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, 5);
	} else {
		lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
	}
}

bool tr_ws_is_open(const struct tr_ws *ws)
{
	return ws && ws->open && !ws->closing && !ws->user_closed;
}
