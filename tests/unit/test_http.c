/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/http.c against a canned HTTP server on loopback, on the same loop:
 * status and body, request method and body as sent, 429 with Retry-After, a response over the
 * size cap, a server that never answers (timeout), a refused connection, and cancel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <uv.h>
#include "alloc.h"
#include "buf.h"
#include "http.h"

struct srv_conn {
	uv_tcp_t tcp;
	struct tr_buf in;
	uv_write_t w;
	char *out;
};

static uv_tcp_t server;
static int port;
static char last_request[4096];

static void conn_closed(uv_handle_t *h)
{
	struct srv_conn *c = h->data;
	tr_buf_cleanup(&c->in);
	free(c->out);
	free(c);
}

static void on_written(uv_write_t *w, int status)
{
	(void)status;
	struct srv_conn *c = w->data;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	(void)h;
	b->base = tr_xmalloc(sz);
	b->len = sz;
}

/* The answer depends on the path in the request line. */
static char *canned(const char *req)
{
	if (strstr(req, " /ok "))
		return tr_xstrdup(
		    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: yes\r\n\r\nhello");
	if (strstr(req, " /echo ")) {
		const char *body = strstr(req, "\r\n\r\n");
		body = body ? body + 4 : "";
		return tr_xasprintf("HTTP/1.1 201 Created\r\nContent-Length: %zu\r\n\r\n%s",
		                    strlen(body), body);
	}
	if (strstr(req, " /limited "))
		return tr_xstrdup("HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\n"
		                  "Content-Length: 2\r\n\r\n{}");
	if (strstr(req, " /big ")) {
		struct tr_buf b;
		tr_buf_init(&b, 1 << 20);
		assert_int_equal(
		    tr_buf_appends(&b, "HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n"), TR_OK);
		for (int i = 0; i < 10000; i++)
			assert_int_equal(tr_buf_append(&b, "x", 1), TR_OK);
		return tr_buf_take(&b);
	}
	return NULL; /* /hang: never answer */
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct srv_conn *c = s->data;
	if (n > 0)
		assert_int_equal(tr_buf_append(&c->in, b->base, (size_t)n), TR_OK);
	free(b->base);
	if (n < 0) {
		uv_close((uv_handle_t *)&c->tcp, conn_closed);
		return;
	}
	const char *req = tr_buf_str(&c->in);
	const char *end = strstr(req, "\r\n\r\n");
	if (!end || c->out)
		return;
	const char *cl = strstr(req, "Content-Length: ");
	size_t want = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
	if (c->in.len < (size_t)(end + 4 - req) + want)
		return;
	snprintf(last_request, sizeof(last_request), "%s", req);
	c->out = canned(req);
	if (!c->out)
		return;
	uv_read_stop(s);
	uv_buf_t ob = uv_buf_init(c->out, (unsigned)strlen(c->out));
	c->w.data = c;
	uv_write(&c->w, s, &ob, 1, on_written);
}

static void on_conn(uv_stream_t *srv, int status)
{
	assert_int_equal(status, 0);
	struct srv_conn *c = tr_xcalloc(1, sizeof(*c));
	tr_buf_init(&c->in, 1 << 20);
	uv_tcp_init(srv->loop, &c->tcp);
	c->tcp.data = c;
	assert_int_equal(uv_accept(srv, (uv_stream_t *)&c->tcp), 0);
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

struct result {
	int done;
	int err;
	long status;
	char body[64];
	double retry;
	char header[64];
};

static void on_done(void *arg, const struct tr_http_resp *r)
{
	struct result *res = arg;
	res->done++;
	res->err = r->err;
	res->status = r->status;
	res->retry = r->retry_after_s;
	snprintf(res->body, sizeof(res->body), "%s", r->body);
	const char *h = tr_http_header(r->call, "x-test");
	snprintf(res->header, sizeof(res->header), "%s", h ? h : "");
}

static int setup(void **state)
{
	(void)state;
	uv_loop_t *loop = uv_default_loop();
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_init(loop, &server);
	assert_int_equal(uv_tcp_bind(&server, (const struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&server, 16, on_conn), 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_getsockname(&server, (struct sockaddr *)&ss, &len);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

static void run(struct tr_http *h, const char *method, const char *path, const char *body,
                size_t max, unsigned timeout, struct result *res)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	const char *hdrs[] = {"Content-Type: application/json"};
	struct tr_http_req req = {.method = method,
	                          .url = url,
	                          .headers = hdrs,
	                          .n_headers = 1,
	                          .body = body,
	                          .body_len = body ? strlen(body) : 0,
	                          .timeout_ms = timeout,
	                          .max_response = max};
	memset(res, 0, sizeof(*res));
	assert_int_equal(tr_http_request(h, &req, on_done, res, NULL), TR_OK);
	while (!res->done)
		uv_run(uv_default_loop(), UV_RUN_ONCE);
	assert_int_equal(res->done, 1);
}

static void test_requests(void **state)
{
	(void)state;
	struct tr_http *h = tr_http_new(uv_default_loop());
	struct result r;
	run(h, "GET", "/ok", NULL, 0, 0, &r);
	assert_int_equal(r.err, TR_OK);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_string_equal(r.header, "yes");
	assert_non_null(strstr(last_request, "GET /ok HTTP/1.1"));

	run(h, "PUT", "/echo", "{\"a\":1}", 0, 0, &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(r.body, "{\"a\":1}");
	assert_non_null(strstr(last_request, "PUT /echo HTTP/1.1"));
	assert_non_null(strstr(last_request, "Content-Type: application/json"));

	run(h, "POST", "/limited", "x", 0, 0, &r);
	assert_int_equal(r.err, TR_E_RATELIMIT);
	assert_int_equal(r.status, 429);
	assert_true(r.retry > 2.9 && r.retry < 3.1);

	run(h, "GET", "/big", NULL, 1000, 0, &r);
	assert_int_equal(r.err, TR_E_TOOBIG);

	run(h, "GET", "/hang", NULL, 0, 300, &r);
	assert_int_equal(r.err, TR_E_TIMEOUT);
	assert_int_equal(tr_http_active(h), 0);
	tr_http_free(h);
}

static void test_refused_and_cancel(void **state)
{
	(void)state;
	struct tr_http *h = tr_http_new(uv_default_loop());
	/* A port nobody listens on: bind one, learn it, close it. */
	uv_tcp_t t;
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_init(uv_default_loop(), &t);
	uv_tcp_bind(&t, (const struct sockaddr *)&a, 0);
	struct sockaddr_storage ss;
	int len = sizeof(ss);
	uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
	int dead = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&t, NULL);
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", dead);
	struct tr_http_req req = {.method = "GET", .url = url, .timeout_ms = 2000};
	struct result r = {0};
	assert_int_equal(tr_http_request(h, &req, on_done, &r, NULL), TR_OK);
	while (!r.done)
		uv_run(uv_default_loop(), UV_RUN_ONCE);
	assert_int_equal(r.err, TR_E_IO);
	assert_int_equal(r.status, 0);

	/* Cancelled: the callback never runs. */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hang", port);
	struct tr_http_call *call = NULL;
	memset(&r, 0, sizeof(r));
	assert_int_equal(tr_http_request(h, &req, on_done, &r, &call), TR_OK);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
	tr_http_cancel(call);
	assert_int_equal(tr_http_active(h), 0);
	tr_http_free(h);
	uv_run(uv_default_loop(), UV_RUN_NOWAIT);
	assert_int_equal(r.done, 0);
}

static void test_status_err(void **state)
{
	(void)state;
	static const struct {
		long status;
		int err;
	} cases[] = {{401, TR_E_AUTH},   {403, TR_E_FORBIDDEN}, {404, TR_E_NOTFOUND},
	             {413, TR_E_TOOBIG}, {429, TR_E_RATELIMIT}, {500, TR_E_IO},
	             {503, TR_E_IO},     {400, TR_E_PROTO},     {409, TR_E_PROTO}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(tr_http_status_err(cases[i].status), cases[i].err);
}

static void test_escape(void **state)
{
	(void)state;
	char *e = tr_http_escape("!room:example.org/é x");
	assert_string_equal(e, "%21room%3Aexample.org%2F%C3%A9%20x");
	free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_requests),
	    cmocka_unit_test(test_refused_and_cancel),
	    cmocka_unit_test(test_status_err),
	    cmocka_unit_test(test_escape),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
