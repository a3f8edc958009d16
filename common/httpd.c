/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A minimal HTTP/1.1 server on libuv for /metrics and /healthz. Each connection reads one
 * request head (request line parsed, headers skipped), answers, and closes. Each connection owns
 * a TCP handle and a timer and is freed once both are closed; the server is freed once its
 * listener and every connection are closed. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "httpd.h"
#include "log.h"

#define TR_HTTPD_HEAD_MAX   (8 * 1024)
#define TR_HTTPD_BODY_MAX   (4 * 1024 * 1024)
#define TR_HTTPD_TIMEOUT_MS 10000
/* A metrics endpoint needs few connections; more are refused rather than queued. */
#define TR_HTTPD_MAX_CONNS 64

struct tr_httpd_conn;

struct tr_httpd {
	uv_loop_t *loop;
	uv_tcp_t listener;
	tr_httpd_handler_fn *fn;
	void *arg;
	bool closing;
	bool listener_closed;
	/* Open connections, so that tr_httpd_close can close them. */
	struct tr_httpd_conn *conns;
	size_t n_conns;
};

struct tr_httpd_conn {
	struct tr_httpd *h;
	struct tr_httpd_conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t write_req;
	uv_shutdown_t shutdown_req;
	int open_handles; /* freed when it drops to 0 */
	bool closing;
	bool answered;
	size_t len;
	char head[TR_HTTPD_HEAD_MAX + 1];
	struct tr_buf resp;
};

static void tr_httpd_maybe_free(struct tr_httpd *h)
{
	if (h->closing && h->listener_closed && h->n_conns == 0)
		free(h);
}

static void tr_httpd_conn_closed(uv_handle_t *handle)
{
	struct tr_httpd_conn *c = handle->data;
	if (--c->open_handles > 0)
		return;
	struct tr_httpd *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	h->n_conns--;
	tr_buf_cleanup(&c->resp);
	free(c);
	tr_httpd_maybe_free(h);
}

static void tr_httpd_conn_close(struct tr_httpd_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, tr_httpd_conn_closed);
	uv_close((uv_handle_t *)&c->timer, tr_httpd_conn_closed);
}

static const char *tr_httpd_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 408:
		return "Request Timeout";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

static void tr_httpd_shutdown_done(uv_shutdown_t *req, int status)
{
	(void)status;
	tr_httpd_conn_close(req->data);
}

static void tr_httpd_write_done(uv_write_t *req, int status)
{
	struct tr_httpd_conn *c = req->data;
	if (c->closing)
		return;
	/* Send FIN after the response rather than closing at once, so the peer reads it all. */
	if (status < 0 ||
	    uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, tr_httpd_shutdown_done) != 0)
		tr_httpd_conn_close(c);
}

static void tr_httpd_respond(struct tr_httpd_conn *c, int status, const char *ctype,
                             const struct tr_buf *body, bool head_only)
{
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	size_t blen = body ? body->len : 0;
	tr_buf_init(&c->resp, TR_HTTPD_BODY_MAX + 1024);
	int rc = tr_buf_printf(&c->resp,
	                       "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                       "%sCache-Control: no-store\r\nConnection: close\r\n\r\n",
	                       status, tr_httpd_reason(status),
	                       ctype ? ctype : "text/plain; charset=utf-8", blen,
	                       status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (rc == TR_OK && !head_only && blen)
		rc = tr_buf_append(&c->resp, body->data, blen);
	if (rc != TR_OK) {
		tr_httpd_conn_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(c->resp.data, (unsigned)c->resp.len);
	c->write_req.data = c;
	c->shutdown_req.data = c;
	if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, tr_httpd_write_done) != 0)
		tr_httpd_conn_close(c);
}

static void tr_httpd_error(struct tr_httpd_conn *c, int status)
{
	struct tr_buf body;
	tr_buf_init(&body, 256);
	/* 256 bytes always hold it. */
	int rc = tr_buf_printf(&body, "%d %s\n", status, tr_httpd_reason(status));
	(void)rc;
	tr_httpd_respond(c, status, NULL, &body, false);
	tr_buf_cleanup(&body);
}

/* RFC 9110 token characters, for the method. */
static bool tr_httpd_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* The head is complete in c->head[0..len): parse the request line and answer. */
static void tr_httpd_handle(struct tr_httpd_conn *c)
{
	char *line = c->head;
	char *eol = memchr(line, '\n', c->len);
	if (!eol) {
		tr_httpd_error(c, 400);
		return;
	}
	if (eol > line && eol[-1] == '\r')
		eol--;
	*eol = '\0';
	/* method SP target SP version, exactly (RFC 9112 §3). */
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1 == line || sp2 == sp1 + 1 || strchr(sp2 + 1, ' ')) {
		tr_httpd_error(c, 400);
		return;
	}
	*sp1 = '\0';
	*sp2 = '\0';
	const char *method = line, *target = sp1 + 1, *version = sp2 + 1;
	for (const char *p = method; *p; p++) {
		if (!tr_httpd_tchar(*p)) {
			tr_httpd_error(c, 400);
			return;
		}
	}
	for (const char *p = target; *p; p++) {
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
			tr_httpd_error(c, 400);
			return;
		}
	}
	if (strcmp(version, "HTTP/1.1") != 0 && strcmp(version, "HTTP/1.0") != 0) {
		tr_httpd_error(c, 400);
		return;
	}
	bool head_only = strcmp(method, "HEAD") == 0;
	if (!head_only && strcmp(method, "GET") != 0) {
		tr_httpd_error(c, 405);
		return;
	}
	if (target[0] != '/') {
		tr_httpd_error(c, 400);
		return;
	}
	char *q = strpbrk(sp1 + 1, "?#");
	if (q)
		*q = '\0';
	struct tr_buf body;
	tr_buf_init(&body, TR_HTTPD_BODY_MAX);
	const char *ctype = NULL;
	int status = c->h->fn(c->h->arg, method, target, &body, &ctype);
	if (status < 100 || status > 599)
		status = 500;
	tr_httpd_respond(c, status, ctype, &body, head_only);
	tr_buf_cleanup(&body);
}

static void tr_httpd_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct tr_httpd_conn *c = handle->data;
	/* One byte past the limit is read, so a head of exactly the limit is told from a longer. */
	*buf = uv_buf_init(c->head + c->len, (unsigned)(sizeof(c->head) - c->len));
}

/* Where the head ends (blank line, CRLF or bare LF), or 0. */
static size_t tr_httpd_head_end(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '\n')
			continue;
		if (i + 1 < len && s[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && s[i + 1] == '\r' && s[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void tr_httpd_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	(void)buf;
	struct tr_httpd_conn *c = stream->data;
	if (c->closing || c->answered)
		return;
	if (nread < 0) {
		/* The peer finished sending: answer a partial request, drop an empty one. */
		if (nread == UV_EOF && c->len > 0)
			tr_httpd_error(c, 400);
		else
			tr_httpd_conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	size_t before = c->len;
	c->len += (size_t)nread;
	/* Rescan from a little before the new data: the blank line may straddle two reads. */
	size_t from = before > 3 ? before - 3 : 0;
	size_t end = tr_httpd_head_end(c->head + from, c->len - from);
	if (end && from + end <= TR_HTTPD_HEAD_MAX) {
		c->head[from + end] = '\0';
		c->len = from + end;
		tr_httpd_handle(c);
		return;
	}
	if (c->len > TR_HTTPD_HEAD_MAX)
		tr_httpd_error(c, 431);
}

static void tr_httpd_timeout(uv_timer_t *t)
{
	struct tr_httpd_conn *c = t->data;
	tr_httpd_conn_close(c);
}

static void tr_httpd_accept(uv_stream_t *server, int status)
{
	struct tr_httpd *h = server->data;
	if (status < 0) {
		tr_warn("httpd: accept failed: %s", uv_strerror(status));
		return;
	}
	struct tr_httpd_conn *c = tr_xcalloc(1, sizeof(*c));
	c->h = h;
	c->tcp.data = c;
	c->timer.data = c;
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->open_handles = 2;
	c->next = h->conns;
	if (h->conns)
		h->conns->prev = c;
	h->conns = c;
	h->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || h->n_conns > TR_HTTPD_MAX_CONNS) {
		tr_httpd_conn_close(c);
		return;
	}
	if (uv_timer_start(&c->timer, tr_httpd_timeout, TR_HTTPD_TIMEOUT_MS, 0) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, tr_httpd_alloc, tr_httpd_read) != 0)
		tr_httpd_conn_close(c);
}

static void tr_httpd_listener_closed(uv_handle_t *handle)
{
	struct tr_httpd *h = handle->data;
	h->listener_closed = true;
	tr_httpd_maybe_free(h);
}

/* "host:port", "[v6]:port", ":port" or "*:port" (every IPv4 address); hosts are numeric except
 * "localhost", so that starting never waits on a resolver. */
static int tr_httpd_addr(const char *addr, struct sockaddr_storage *ss, char err[TR_ERR_LEN])
{
	char host[64];
	const char *colon;
	size_t hlen;
	bool v6 = false;
	if (addr[0] == '[') {
		const char *rb = strchr(addr, ']');
		if (!rb || rb[1] != ':') {
			snprintf(err, TR_ERR_LEN, "bad address (expected host:port or [v6]:port)");
			return TR_E_INVAL;
		}
		colon = rb + 1;
		hlen = (size_t)(rb - addr - 1);
		addr++;
		v6 = true;
	} else {
		colon = strrchr(addr, ':');
		if (!colon) {
			snprintf(err, TR_ERR_LEN, "bad address (expected host:port)");
			return TR_E_INVAL;
		}
		hlen = (size_t)(colon - addr);
	}
	if (hlen >= sizeof(host)) {
		snprintf(err, TR_ERR_LEN, "bad address (host too long)");
		return TR_E_INVAL;
	}
	memcpy(host, addr, hlen);
	host[hlen] = '\0';
	char *end = NULL;
	long port = strtol(colon + 1, &end, 10);
	if (!colon[1] || !end || *end || port < 0 || port > 65535) {
		snprintf(err, TR_ERR_LEN, "bad port in address");
		return TR_E_INVAL;
	}
	if (!v6 && (hlen == 0 || strcmp(host, "*") == 0))
		snprintf(host, sizeof(host), "0.0.0.0");
	else if (!v6 && strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	int rc = v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss)
	            : uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss);
	if (rc != 0) {
		snprintf(err, TR_ERR_LEN, "bad address: host must be a numeric IP address");
		return TR_E_INVAL;
	}
	return TR_OK;
}

struct tr_httpd *tr_httpd_start(uv_loop_t *loop, const char *addr, tr_httpd_handler_fn *fn,
                                void *arg, char err[TR_ERR_LEN])
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (!loop || !addr || !fn) {
		snprintf(err, TR_ERR_LEN, "bad arguments");
		return NULL;
	}
	if (tr_httpd_addr(addr, &ss, err) != TR_OK)
		return NULL;
	struct tr_httpd *h = tr_xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->fn = fn;
	h->arg = arg;
	h->listener.data = h;
	int rc = uv_tcp_init(loop, &h->listener);
	if (rc != 0) {
		snprintf(err, TR_ERR_LEN, "%s", uv_strerror(rc));
		free(h);
		return NULL;
	}
	rc = uv_tcp_bind(&h->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&h->listener, 128, tr_httpd_accept);
	if (rc != 0) {
		snprintf(err, TR_ERR_LEN, "cannot listen on %s: %s", addr, uv_strerror(rc));
		tr_httpd_close(h);
		return NULL;
	}
	return h;
}

void tr_httpd_close(struct tr_httpd *h)
{
	if (!h || h->closing)
		return;
	h->closing = true;
	uv_close((uv_handle_t *)&h->listener, tr_httpd_listener_closed);
	for (struct tr_httpd_conn *c = h->conns; c; c = c->next)
		tr_httpd_conn_close(c);
}
