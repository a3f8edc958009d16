/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* common/ws against an in-process libwebsockets server on 127.0.0.1 on the same libuv loop:
 * queued sends before the handshake, fragment gathering, the size cap, peer close, user
 * close without callback, refused connects and bad URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libwebsockets.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "ws.h"

/* ---- the server: echo, plus a few commands ---- */

struct srv_conn {
	char reply[2048];
	size_t reply_len, sent;
	bool fragmented, pending, close_after;
};

static int srv_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                  size_t len)
{
	struct srv_conn *sc = user;
	unsigned char buf[LWS_PRE + 2048];
	switch (reason) {
	case LWS_CALLBACK_RECEIVE:
		if (len == 4 && memcmp(in, "frag", 4) == 0) {
			memcpy(sc->reply, "hello fragmented world", 22);
			sc->reply_len = 22;
			sc->fragmented = true;
		} else if (len == 3 && memcmp(in, "big", 3) == 0) {
			memset(sc->reply, 'x', 1000);
			sc->reply_len = 1000;
			sc->fragmented = false;
		} else if (len == 3 && memcmp(in, "bye", 3) == 0) {
			sc->close_after = true;
			sc->reply_len = 0;
		} else {
			memcpy(sc->reply, in, len < 2048 ? len : 2048);
			sc->reply_len = len < 2048 ? len : 2048;
			sc->fragmented = false;
		}
		sc->sent = 0;
		sc->pending = true;
		lws_callback_on_writable(wsi);
		break;
	case LWS_CALLBACK_SERVER_WRITEABLE: {
		if (!sc->pending)
			break;
		if (sc->close_after) {
			lws_close_reason(wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)"bye",
			                 3);
			return -1;
		}
		size_t chunk = sc->fragmented ? 6 : sc->reply_len;
		if (chunk > sc->reply_len - sc->sent)
			chunk = sc->reply_len - sc->sent;
		int flags = lws_write_ws_flags(LWS_WRITE_TEXT, sc->sent == 0,
		                               sc->sent + chunk == sc->reply_len);
		memcpy(buf + LWS_PRE, sc->reply + sc->sent, chunk);
		if (lws_write(wsi, buf + LWS_PRE, chunk, (enum lws_write_protocol)flags) <
		    (int)chunk)
			return -1;
		sc->sent += chunk;
		if (sc->sent < sc->reply_len)
			lws_callback_on_writable(wsi);
		else
			sc->pending = false;
		break;
	}
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols srv_protocols[] = {
    {.name = "echo", .callback = srv_cb, .per_session_data_size = sizeof(struct srv_conn)},
    {0},
};

struct fixture {
	uv_loop_t loop;
	uv_timer_t guard;
	bool expired;
	struct lws_context *srv;
	int port;
	struct tr_ws_ctx *x;
	/* what the client saw */
	char msgs[8][1100];
	size_t n_msgs;
	bool opened, closed;
	int close_err;
};

static void guard_cb(uv_timer_t *t)
{
	struct fixture *f = t->data;
	f->expired = true;
}

static int setup(void **state)
{
	struct fixture *f = tr_xcalloc(1, sizeof(*f));
	uv_loop_init(&f->loop);
	uv_timer_init(&f->loop, &f->guard);
	f->guard.data = f;
	void *loops[1] = {&f->loop};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	info.port = 0;
	info.iface = "127.0.0.1";
	info.protocols = srv_protocols;
	info.options = LWS_SERVER_OPTION_LIBUV;
	info.foreign_loops = loops;
	f->srv = lws_create_context(&info);
	assert_non_null(f->srv);
	f->port = lws_get_vhost_listen_port(lws_get_vhost_by_name(f->srv, "default"));
	assert_true(f->port > 0);
	char err[TR_ERR_LEN];
	f->x = tr_ws_ctx_new(&f->loop, 5, err);
	assert_non_null(f->x);
	*state = f;
	return 0;
}

static void closed_cb(uv_handle_t *h)
{
	(void)h;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	tr_ws_ctx_free(f->x);
	while (tr_ws_ctx_live())
		uv_run(&f->loop, UV_RUN_ONCE);
	/* The server's context finishes its foreign-loop destruction on the second call. */
	lws_context_destroy(f->srv);
	uv_close((uv_handle_t *)&f->guard, closed_cb);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	lws_context_destroy(f->srv);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* Runs the loop until pred holds or 5 s pass (a bound, not a sleep). */
static bool run_until(struct fixture *f, bool (*pred)(struct fixture *))
{
	f->expired = false;
	uv_timer_start(&f->guard, guard_cb, 5000, 0);
	while (!pred(f) && !f->expired)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->guard);
	return pred(f);
}

static void on_open(void *arg, struct tr_ws *ws)
{
	(void)ws;
	((struct fixture *)arg)->opened = true;
}

static void on_message(void *arg, struct tr_ws *ws, const char *msg, size_t len, bool binary)
{
	(void)ws;
	struct fixture *f = arg;
	assert_false(binary);
	assert_int_equal(strlen(msg), len);
	if (f->n_msgs < 8)
		snprintf(f->msgs[f->n_msgs++], sizeof(f->msgs[0]), "%s", msg);
}

static void on_close(void *arg, struct tr_ws *ws, int err, const char *detail)
{
	(void)ws;
	(void)detail;
	struct fixture *f = arg;
	f->closed = true;
	f->close_err = err;
}

static struct tr_ws *open_ws(struct fixture *f, size_t max_message)
{
	char url[64];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/path?x=1", f->port);
	struct tr_ws_opts o = {.url = url,
	                       .max_message = max_message,
	                       .on_open = on_open,
	                       .on_message = on_message,
	                       .on_close = on_close,
	                       .arg = f};
	struct tr_ws *ws = NULL;
	assert_int_equal(tr_ws_open(f->x, &o, &ws), TR_OK);
	assert_non_null(ws);
	return ws;
}

static bool three_msgs(struct fixture *f)
{
	return f->n_msgs >= 3;
}
static bool one_msg(struct fixture *f)
{
	return f->n_msgs >= 1;
}
static bool is_closed(struct fixture *f)
{
	return f->closed;
}
static bool is_open(struct fixture *f)
{
	return f->opened;
}

static void test_ws_queued_before_open_in_order(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 0);
	static const char *const words[] = {"one", "two", "three"};
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(tr_ws_send(ws, words[i], strlen(words[i])), TR_OK);
	assert_true(run_until(f, three_msgs));
	assert_true(f->opened);
	assert_true(tr_ws_is_open(ws));
	for (size_t i = 0; i < 3; i++)
		assert_string_equal(f->msgs[i], words[i]);
	tr_ws_close(ws);
	assert_int_equal(tr_ws_send(ws, "late", 4), TR_E_CLOSED);
}

static void test_ws_fragments_gathered(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 0);
	assert_int_equal(tr_ws_send(ws, "frag", 4), TR_OK);
	assert_true(run_until(f, one_msg));
	assert_int_equal(f->n_msgs, 1);
	assert_string_equal(f->msgs[0], "hello fragmented world");
	tr_ws_close(ws);
}

static void test_ws_message_over_cap_closes(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 64);
	assert_int_equal(tr_ws_send(ws, "big", 3), TR_OK);
	assert_true(run_until(f, is_closed));
	assert_int_equal(f->close_err, TR_E_TOOBIG);
	assert_int_equal(f->n_msgs, 0);
}

static void test_ws_peer_close_reported(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 0);
	assert_int_equal(tr_ws_send(ws, "bye", 3), TR_OK);
	assert_true(run_until(f, is_closed));
	assert_int_equal(f->n_msgs, 0);
}

static void test_ws_user_close_no_callback(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 0);
	assert_true(run_until(f, is_open));
	tr_ws_close(ws);
	/* A second connection proves the loop went on; the first never calls back. */
	struct tr_ws *ws2 = open_ws(f, 0);
	assert_int_equal(tr_ws_send(ws2, "ping?", 5), TR_OK);
	assert_true(run_until(f, one_msg));
	assert_false(f->closed);
	tr_ws_close(ws2);
}

static void test_ws_close_before_open(void **state)
{
	struct fixture *f = *state;
	struct tr_ws *ws = open_ws(f, 0);
	tr_ws_close(ws);
	struct tr_ws *ws2 = open_ws(f, 0);
	assert_int_equal(tr_ws_send(ws2, "after", 5), TR_OK);
	assert_true(run_until(f, one_msg));
	assert_string_equal(f->msgs[0], "after");
	assert_false(f->closed);
	tr_ws_close(ws2);
}

static void test_ws_refused(void **state)
{
	struct fixture *f = *state;
	/* A port that was just free: bind, read the number, close. */
	uv_tcp_t tcp;
	uv_tcp_init(&f->loop, &tcp);
	struct sockaddr_in sa;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	assert_int_equal(uv_tcp_bind(&tcp, (const struct sockaddr *)&sa, 0), 0);
	struct sockaddr_in got;
	int namelen = sizeof(got);
	uv_tcp_getsockname(&tcp, (struct sockaddr *)&got, &namelen);
	uv_close((uv_handle_t *)&tcp, closed_cb);
	char url[64];
	snprintf(url, sizeof(url), "ws://127.0.0.1:%d/", ntohs(got.sin_port));
	struct tr_ws_opts o = {
	    .url = url, .on_message = on_message, .on_close = on_close, .arg = f};
	struct tr_ws *ws = NULL;
	int rc = tr_ws_open(f->x, &o, &ws);
	if (rc == TR_OK) {
		assert_true(run_until(f, is_closed));
		assert_int_not_equal(f->close_err, TR_OK);
	} else {
		assert_int_equal(rc, TR_E_IO);
	}
	assert_false(f->opened);
}

static void test_ws_bad_urls(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {"http://127.0.0.1/", "nonsense", "ws://", ""};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		struct tr_ws_opts o = {.url = bad[i], .on_message = on_message, .arg = f};
		struct tr_ws *ws = (struct tr_ws *)1;
		assert_int_equal(tr_ws_open(f->x, &o, &ws), TR_E_INVAL);
		assert_null(ws);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_ws_queued_before_open_in_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_fragments_gathered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_message_over_cap_closes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_peer_close_reported, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_user_close_no_callback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_close_before_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_ws_bad_urls, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
