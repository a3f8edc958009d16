/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The application-service listener: a small HTTP/1.1 server on the loop that, unlike
 * common/httpd (GET/HEAD only), reads a request body of Content-Length bytes (transactions are
 * PUT with JSON). One request per connection (Connection: close), head at most 16 KiB, body at
 * most 16 MiB, 30 s to send it all. Each connection owns a TCP handle and a timer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alloc.h"
#include "log.h"
#include "matrix.h"

#define ASD_HEAD_MAX   (16 * 1024)
#define ASD_BODY_MAX   (16 * 1024 * 1024)
#define ASD_TIMEOUT_MS 30000
#define ASD_MAX_CONNS  64

struct asd_conn;

struct matrix_asd {
	uv_loop_t *loop;
	uv_tcp_t listener;
	matrix_asd_fn *fn;
	void *arg;
	bool closing, listener_closed;
	struct asd_conn *conns;
	size_t n_conns;
	uint64_t next_id;
	struct asd_conn *current; /* the connection whose request fn is handling */
};

struct asd_conn {
	struct matrix_asd *a;
	struct asd_conn *prev, *next;
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wreq;
	uv_shutdown_t sreq;
	int open_handles;
	uint64_t id;
	bool closing, answered, deferred;
	struct tr_buf in; /* head, then body */
	size_t head_len;  /* 0 until the head is complete */
	size_t body_len;
	struct tr_buf out;
	char rbuf[65536];
};

static void asd_maybe_free(struct matrix_asd *a)
{
	if (a->closing && a->listener_closed && a->n_conns == 0)
		free(a);
}

static void asd_conn_closed(uv_handle_t *h)
{
	struct asd_conn *c = h->data;
	if (--c->open_handles > 0)
		return;
	struct matrix_asd *a = c->a;
	if (c->prev)
		c->prev->next = c->next;
	else
		a->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->n_conns--;
	tr_buf_cleanup(&c->in);
	tr_buf_cleanup(&c->out);
	free(c);
	asd_maybe_free(a);
}

static void asd_conn_close(struct asd_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, asd_conn_closed);
	uv_close((uv_handle_t *)&c->timer, asd_conn_closed);
}

static void asd_shutdown_done(uv_shutdown_t *req, int status)
{
	(void)status;
	asd_conn_close(req->data);
}

static void asd_write_done(uv_write_t *req, int status)
{
	struct asd_conn *c = req->data;
	if (c->closing)
		return;
	if (status < 0 || uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, asd_shutdown_done) != 0)
		asd_conn_close(c);
}

static const char *asd_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	default:
		return status >= 500 ? "Internal Server Error" : "Error";
	}
}

static void asd_respond(struct asd_conn *c, int status, const char *json)
{
	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	size_t n = strlen(json);
	tr_buf_init(&c->out, n + 512);
	if (tr_buf_printf(&c->out,
	                  "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
	                  "%zu\r\nConnection: close\r\n\r\n%s",
	                  status, asd_reason(status), n, json) != TR_OK) {
		asd_conn_close(c);
		return;
	}
	uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
	c->wreq.data = c;
	c->sreq.data = c;
	if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, asd_write_done) != 0)
		asd_conn_close(c);
}

static void asd_error(struct asd_conn *c, int status, const char *errcode)
{
	char body[160];
	snprintf(body, sizeof(body), "{\"errcode\":\"%s\",\"error\":\"%s\"}", errcode,
	         asd_reason(status));
	asd_respond(c, status, body);
}

/* The value of header name in the head (lines after the request line), copied into out. */
static bool asd_header(const char *head, const char *name, char *out, size_t outsz)
{
	size_t nl = strlen(name);
	const char *p = strchr(head, '\n');
	while (p && p[1]) {
		p++;
		const char *eol = strchr(p, '\n');
		size_t linelen = eol ? (size_t)(eol - p) : strlen(p);
		if (linelen > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			const char *end = p + linelen;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
				end--;
			size_t vl = (size_t)(end - v);
			if (vl >= outsz)
				return false;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return true;
		}
		p = eol;
	}
	return false;
}

static void asd_handle(struct asd_conn *c)
{
	char *head = c->in.data;
	char *eol = strchr(head, '\n');
	if (!eol) {
		asd_error(c, 400, "M_UNKNOWN");
		return;
	}
	char line[2048];
	size_t ll = (size_t)(eol - head);
	if (ll && head[ll - 1] == '\r')
		ll--;
	if (ll >= sizeof(line)) {
		asd_error(c, 400, "M_UNKNOWN");
		return;
	}
	memcpy(line, head, ll);
	line[ll] = '\0';
	char *sp1 = strchr(line, ' ');
	char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
	if (!sp1 || !sp2 || sp1[1] != '/') {
		asd_error(c, 400, "M_UNKNOWN");
		return;
	}
	*sp1 = '\0';
	*sp2 = '\0';
	char *target = sp1 + 1;
	char *q = strchr(target, '?');
	const char *query = "";
	if (q) {
		*q = '\0';
		query = q + 1;
	}
	char authz[1024];
	bool has_authz = asd_header(head, "Authorization", authz, sizeof(authz));
	struct tr_buf resp;
	tr_buf_init(&resp, 64 * 1024);
	c->a->current = c;
	int status = c->a->fn(c->a->arg, line, target, query, has_authz ? authz : NULL,
	                      c->in.data + c->head_len, c->body_len, &resp);
	c->a->current = NULL;
	if (!c->deferred)
		asd_respond(c, status, resp.len ? tr_buf_str(&resp) : "{}");
	tr_buf_cleanup(&resp);
}

static void asd_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct asd_conn *c = h->data;
	*buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static size_t asd_head_end(const char *s, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (s[i] != '\n')
			continue;
		if (s[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && s[i + 1] == '\r' && s[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

static void asd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct asd_conn *c = s->data;
	if (c->closing || c->answered)
		return;
	if (n < 0) {
		asd_conn_close(c);
		return;
	}
	if (tr_buf_append(&c->in, buf->base, (size_t)n) != TR_OK) {
		asd_error(c, 413, "M_TOO_LARGE");
		return;
	}
	if (!c->head_len) {
		size_t end = asd_head_end(c->in.data ? c->in.data : "", c->in.len);
		if (!end) {
			if (c->in.len > ASD_HEAD_MAX)
				asd_error(c, 413, "M_TOO_LARGE");
			return;
		}
		c->head_len = end;
		char hdr[64];
		/* The head is kept NUL-terminated for parsing; the body follows it. */
		char saved = c->in.data[end - 1];
		c->in.data[end - 1] = '\0';
		bool chunked = asd_header(c->in.data, "Transfer-Encoding", hdr, sizeof(hdr));
		bool has_len = asd_header(c->in.data, "Content-Length", hdr, sizeof(hdr));
		c->in.data[end - 1] = saved;
		if (chunked) {
			asd_error(c, 411, "M_UNKNOWN");
			return;
		}
		long v = 0;
		if (has_len) {
			char *e = NULL;
			v = strtol(hdr, &e, 10);
			if (!*hdr || *e || v < 0 || v > ASD_BODY_MAX) {
				asd_error(c, 413, "M_TOO_LARGE");
				return;
			}
		}
		c->body_len = (size_t)v;
	}
	if (c->in.len - c->head_len < c->body_len)
		return;
	/* The request line and headers end at head_len; NUL-terminate the head in place of its
	 * final newline for parsing, the body is passed with its length. */
	c->in.data[c->head_len - 1] = '\0';
	asd_handle(c);
}

static void asd_timeout(uv_timer_t *t)
{
	asd_conn_close(t->data);
}

uint64_t matrix_asd_defer(struct matrix_asd *a)
{
	if (!a->current)
		return 0;
	a->current->deferred = true;
	return a->current->id;
}

void matrix_asd_reply(struct matrix_asd *a, uint64_t id, int status, const char *json)
{
	/* Looked up by id: the connection may have timed out and gone meanwhile. */
	for (struct asd_conn *c = a->conns; c; c = c->next)
		if (c->id == id && !c->closing && !c->answered) {
			asd_respond(c, status, json);
			return;
		}
}

static void asd_accept(uv_stream_t *server, int status)
{
	struct matrix_asd *a = server->data;
	if (status < 0)
		return;
	struct asd_conn *c = tr_xcalloc(1, sizeof(*c));
	c->a = a;
	c->id = ++a->next_id;
	c->tcp.data = c;
	c->timer.data = c;
	tr_buf_init(&c->in, ASD_HEAD_MAX + ASD_BODY_MAX);
	uv_tcp_init(a->loop, &c->tcp);
	uv_timer_init(a->loop, &c->timer);
	c->open_handles = 2;
	c->next = a->conns;
	if (a->conns)
		a->conns->prev = c;
	a->conns = c;
	a->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->n_conns > ASD_MAX_CONNS) {
		asd_conn_close(c);
		return;
	}
	if (uv_timer_start(&c->timer, asd_timeout, ASD_TIMEOUT_MS, 0) != 0 ||
	    uv_read_start((uv_stream_t *)&c->tcp, asd_alloc, asd_read) != 0)
		asd_conn_close(c);
}

static void asd_listener_closed(uv_handle_t *h)
{
	struct matrix_asd *a = h->data;
	a->listener_closed = true;
	asd_maybe_free(a);
}

struct matrix_asd *matrix_asd_start(uv_loop_t *loop, const char *addr, matrix_asd_fn *fn, void *arg,
                                    char err[TR_ERR_LEN])
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host)) {
		snprintf(err, TR_ERR_LEN, "bad address (expected host:port)");
		return NULL;
	}
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (!host[0] || strcmp(host, "*") == 0)
		snprintf(host, sizeof(host), "0.0.0.0");
	else if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	long port = 0;
	if (tr_parse_long(colon + 1, 0, 65535, &port) != TR_OK) {
		snprintf(err, TR_ERR_LEN, "bad port in address");
		return NULL;
	}
	struct sockaddr_in sin;
	if (uv_ip4_addr(host, (int)port, &sin) != 0) {
		snprintf(err, TR_ERR_LEN, "host must be a numeric IPv4 address");
		return NULL;
	}
	struct matrix_asd *a = tr_xcalloc(1, sizeof(*a));
	a->loop = loop;
	a->fn = fn;
	a->arg = arg;
	a->listener.data = a;
	uv_tcp_init(loop, &a->listener);
	int rc = uv_tcp_bind(&a->listener, (const struct sockaddr *)&sin, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->listener, 128, asd_accept);
	if (rc != 0) {
		snprintf(err, TR_ERR_LEN, "%s", uv_strerror(rc));
		a->closing = true;
		uv_close((uv_handle_t *)&a->listener, asd_listener_closed);
		return NULL;
	}
	return a;
}

void matrix_asd_close(struct matrix_asd *a)
{
	if (!a)
		return;
	a->closing = true;
	for (struct asd_conn *c = a->conns; c; c = c->next)
		asd_conn_close(c);
	uv_close((uv_handle_t *)&a->listener, asd_listener_closed);
}
