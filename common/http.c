/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* libcurl multi on the libuv loop: CURLMOPT_SOCKETFUNCTION keeps one uv_poll_t per socket
 * curl wants watched, CURLMOPT_TIMERFUNCTION arms one uv_timer_t, and finished transfers are
 * collected after every socket action. Responses are kept in bounded buffers. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "alloc.h"
#include "buf.h"
#include "http.h"
#include "log.h"

#define TR_HTTP_MAX_HEADERS (64 * 1024)

struct tr_http_sock {
	uv_poll_t poll;
	curl_socket_t fd;
	struct tr_http *h;
	struct tr_http_sock *prev, *next;
};

struct tr_http_call {
	struct tr_http *h;
	CURL *easy;
	struct curl_slist *hdrs;
	struct tr_buf body, head;
	bool toobig;
	tr_http_done_fn *done;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	struct tr_http_call *prev, *next;
};

struct tr_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	struct tr_http_call *calls;
	struct tr_http_sock *socks;
	unsigned active;
	bool freeing;
	int closing;
};

static void tr_http_check_done(struct tr_http *h);

static void tr_http_sock_closed(uv_handle_t *hd)
{
	struct tr_http_sock *s = hd->data;
	struct tr_http *h = s->h;
	free(s);
	if (--h->closing == 0 && h->freeing)
		free(h);
}

static void tr_http_sock_close(struct tr_http *h, struct tr_http_sock *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	h->closing++; /* h lives until every handle it owns is closed */
	uv_close((uv_handle_t *)&s->poll, tr_http_sock_closed);
}

static void tr_http_on_poll(uv_poll_t *p, int status, int events)
{
	struct tr_http_sock *s = p->data;
	struct tr_http *h = s->h;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running = 0;
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	tr_http_check_done(h);
}

static int tr_http_on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct tr_http *h = userp;
	struct tr_http_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			curl_multi_assign(h->multi, fd, NULL);
			tr_http_sock_close(h, s);
		}
		return 0;
	}
	if (!s) {
		s = tr_xcalloc(1, sizeof(*s));
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		curl_multi_assign(h->multi, fd, s);
	}
	int ev = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		ev |= UV_READABLE;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, tr_http_on_poll);
	return 0;
}

static void tr_http_on_timer(uv_timer_t *t)
{
	struct tr_http *h = t->data;
	int running = 0;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	tr_http_check_done(h);
}

static int tr_http_on_timerfn(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct tr_http *h = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, tr_http_on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static size_t tr_http_on_body(char *p, size_t size, size_t n, void *userdata)
{
	struct tr_http_call *c = userdata;
	if (tr_buf_append(&c->body, p, size * n) != TR_OK) {
		c->toobig = true;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	return size * n;
}

static size_t tr_http_on_header(char *p, size_t size, size_t n, void *userdata)
{
	struct tr_http_call *c = userdata;
	/* After a redirect or a 100 Continue only the last response's headers count. */
	if (size * n >= 5 && strncmp(p, "HTTP/", 5) == 0)
		tr_buf_reset(&c->head);
	int rc = tr_buf_append(&c->head, p, size * n);
	(void)rc; /* past 64 KiB, later headers are lost: they are not the ones we read */
	return size * n;
}

static void tr_http_unlink(struct tr_http_call *c)
{
	struct tr_http *h = c->h;
	if (c->prev)
		c->prev->next = c->next;
	else
		h->calls = c->next;
	if (c->next)
		c->next->prev = c->prev;
	curl_multi_remove_handle(h->multi, c->easy);
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->hdrs);
	tr_buf_cleanup(&c->body);
	tr_buf_cleanup(&c->head);
	h->active--;
	free(c);
}

const char *tr_http_header(const struct tr_http_call *call, const char *name)
{
	static char value[1024];
	size_t nl = strlen(name);
	const char *p = tr_buf_str(&call->head);
	while (*p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		if (len > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0) {
			const char *v = p + nl + 1;
			const char *end = p + len;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == '\r' || end[-1] == ' '))
				end--;
			snprintf(value, sizeof(value), "%.*s", (int)(end - v), v);
			return value;
		}
		p += len + (eol ? 1 : 0);
	}
	return NULL;
}

static double tr_http_retry_after(const struct tr_http_call *c)
{
	const char *v = tr_http_header(c, "Retry-After");
	if (!v || !*v)
		return -1;
	char *end = NULL;
	double secs = strtod(v, &end);
	if (end && *end == '\0' && secs >= 0)
		return secs;
	time_t when = curl_getdate(v, NULL);
	if (when < 0)
		return -1;
	double d = difftime(when, time(NULL));
	return d > 0 ? d : 0;
}

static void tr_http_check_done(struct tr_http *h)
{
	CURLMsg *m;
	int left = 0;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct tr_http_call *c = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&c);
		if (!c)
			continue;
		struct tr_http_resp r = {.err = TR_OK, .retry_after_s = -1, .call = c};
		CURLcode cc = m->data.result;
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &r.status);
		if (cc == CURLE_OK) {
			r.retry_after_s = tr_http_retry_after(c);
			if (r.status == 429 || (r.status == 503 && r.retry_after_s >= 0))
				r.err = TR_E_RATELIMIT;
		} else if (c->toobig) {
			r.err = TR_E_TOOBIG;
			r.detail = "response too large";
		} else {
			r.err = cc == CURLE_OPERATION_TIMEDOUT ? TR_E_TIMEOUT : TR_E_IO;
			r.detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
		}
		r.body = tr_buf_str(&c->body);
		r.len = c->body.len;
		tr_http_done_fn *done = c->done;
		void *arg = c->arg;
		c->done = NULL;
		if (done)
			done(arg, &r);
		tr_http_unlink(c);
	}
}

struct tr_http *tr_http_new(uv_loop_t *loop)
{
	static bool inited;
	if (!inited) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		inited = true;
	}
	struct tr_http *h = tr_xcalloc(1, sizeof(*h));
	h->loop = loop;
	h->multi = curl_multi_init();
	if (!h->multi)
		abort();
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, tr_http_on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, tr_http_on_timerfn);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 8L);
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	return h;
}

int tr_http_request(struct tr_http *h, const struct tr_http_req *req, tr_http_done_fn *done,
                    void *arg, struct tr_http_call **out)
{
	if (!req->url || !req->method || h->freeing)
		return TR_E_INVAL;
	struct tr_http_call *c = tr_xcalloc(1, sizeof(*c));
	c->h = h;
	c->done = done;
	c->arg = arg;
	tr_buf_init(&c->body, req->max_response ? req->max_response : 4 * 1024 * 1024);
	tr_buf_init(&c->head, TR_HTTP_MAX_HEADERS);
	c->easy = curl_easy_init();
	if (!c->easy) {
		free(c);
		return TR_E_NOMEM;
	}
	CURL *e = c->easy;
	curl_easy_setopt(e, CURLOPT_URL, req->url);
	curl_easy_setopt(e, CURLOPT_PRIVATE, c);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, tr_http_on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, tr_http_on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
	unsigned t = req->timeout_ms ? req->timeout_ms : 30000;
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(t < 10000 ? t : 10000));
	curl_easy_setopt(e, CURLOPT_USERAGENT, "trestle/0.1");
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 3L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	if (strcmp(req->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else {
		if (strcmp(req->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
		                 req->body ? (const char *)req->body : "");
	}
	for (size_t i = 0; i < req->n_headers; i++)
		c->hdrs = curl_slist_append(c->hdrs, req->headers[i]);
	/* No "Expect: 100-continue" round trip for bodies. */
	c->hdrs = curl_slist_append(c->hdrs, "Expect:");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->hdrs);
	c->next = h->calls;
	if (h->calls)
		h->calls->prev = c;
	h->calls = c;
	h->active++;
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		c->done = NULL;
		tr_http_unlink(c);
		return TR_E_NOMEM;
	}
	if (out)
		*out = c;
	return TR_OK;
}

void tr_http_cancel(struct tr_http_call *call)
{
	if (call)
		tr_http_unlink(call);
}

unsigned tr_http_active(const struct tr_http *h)
{
	return h->active;
}

static void tr_http_timer_closed(uv_handle_t *hd)
{
	struct tr_http *h = hd->data;
	if (--h->closing == 0 && h->freeing)
		free(h);
}

void tr_http_free(struct tr_http *h)
{
	if (!h)
		return;
	while (h->calls)
		tr_http_unlink(h->calls);
	h->freeing = true;
	h->closing++; /* the timer */
	curl_multi_cleanup(h->multi);
	while (h->socks)
		tr_http_sock_close(h, h->socks);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, tr_http_timer_closed);
}

int tr_http_status_err(long status)
{
	switch (status) {
	case 401:
		return TR_E_AUTH;
	case 403:
		return TR_E_FORBIDDEN;
	case 404:
		return TR_E_NOTFOUND;
	case 413:
		return TR_E_TOOBIG;
	case 429:
		return TR_E_RATELIMIT;
	default:
		return status >= 500 ? TR_E_IO : TR_E_PROTO;
	}
}

char *tr_http_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = tr_xmalloc(3 * n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
	return out;
}
