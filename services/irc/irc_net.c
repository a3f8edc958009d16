/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The byte stream under trestle-irc: resolve, TCP connect on the libuv loop, and TLS with OpenSSL
 * over memory BIOs (the socket stays libuv's; OpenSSL only transforms bytes), so nothing ever
 * blocks. A link is reference counted: the TCP handle and every pending request hold it, and it
 * is freed when the last one finishes, so abandoning a link never leaves a callback on freed
 * memory. */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <string.h>
#include "alloc.h"
#include "irc_net.h"
#include "log.h"

struct irc_link {
	struct irc_link_cb cb; /* cb.fn NULL once abandoned */
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_getaddrinfo_t gai;
	bool gai_pending;
	int refs;
	int port;
	char *host;
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	bool up;          /* connected and, with TLS, handshake done */
};

struct irc_wreq {
	uv_write_t req;
	struct irc_link *link;
	size_t len;
	char data[];
};

static void irc_link_unref(struct irc_link *l)
{
	if (--l->refs > 0)
		return;
	if (l->ssl)
		SSL_free(l->ssl);
	free(l->host);
	free(l);
}

static void irc_link_fail(struct irc_link *l, int err, const char *detail)
{
	if (l->cb.fn)
		l->cb.fn(l->cb.arg, IRC_LINK_LOST, err, detail, NULL, 0);
}

static void irc_link_on_write(uv_write_t *req, int status)
{
	struct irc_wreq *w = (struct irc_wreq *)req;
	struct irc_link *l = w->link;
	if (status < 0 && status != UV_ECANCELED)
		irc_link_fail(l, TR_E_IO, "write failed");
	free(w);
	irc_link_unref(l);
}

static void irc_link_raw_write(struct irc_link *l, const void *data, size_t len)
{
	struct irc_wreq *w = tr_xmalloc(sizeof(*w) + len);
	memcpy(w->data, data, len);
	w->len = len;
	w->link = l;
	uv_buf_t b = uv_buf_init(w->data, (unsigned)len);
	l->refs++;
	int rc = uv_write(&w->req, (uv_stream_t *)&l->tcp, &b, 1, irc_link_on_write);
	if (rc < 0) {
		free(w);
		l->refs--;
		irc_link_fail(l, TR_E_IO, "write failed");
	}
}

/* Sends whatever OpenSSL produced (handshake records, encrypted application data). */
static void irc_link_flush_tls(struct irc_link *l)
{
	char buf[16384];
	while (l->ssl && BIO_ctrl_pending(l->wbio) > 0) {
		int n = BIO_read(l->wbio, buf, sizeof(buf));
		if (n <= 0)
			break;
		irc_link_raw_write(l, buf, (size_t)n);
	}
}

int irc_link_write(struct irc_link *l, const char *data, size_t len)
{
	if (!l->up)
		return TR_E_AGAIN;
	if (!l->ssl) {
		irc_link_raw_write(l, data, len);
		return TR_OK;
	}
	/* With memory BIOs SSL_write either takes everything or fails outright. */
	if (SSL_write(l->ssl, data, (int)len) != (int)len) {
		ERR_clear_error();
		return TR_E_IO;
	}
	irc_link_flush_tls(l);
	return TR_OK;
}

static void irc_link_set_up(struct irc_link *l)
{
	l->up = true;
	if (l->cb.fn)
		l->cb.fn(l->cb.arg, IRC_LINK_UP, TR_OK, NULL, NULL, 0);
}

static void irc_link_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)h;
	(void)suggested;
	static char chunk[65536];
	*buf = uv_buf_init(chunk, sizeof(chunk));
}

static void irc_link_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct irc_link *l = s->data;
	if (!l->cb.fn || n == 0)
		return;
	if (n < 0) {
		uv_read_stop(s);
		irc_link_fail(l, n == UV_EOF ? TR_E_CLOSED : TR_E_IO,
		              n == UV_EOF ? "server closed the connection" : "read failed");
		return;
	}
	if (!l->ssl) {
		l->cb.fn(l->cb.arg, IRC_LINK_DATA, TR_OK, NULL, buf->base, (size_t)n);
		return;
	}
	BIO_write(l->rbio, buf->base, (int)n);
	if (!l->up) {
		int rc = SSL_do_handshake(l->ssl);
		irc_link_flush_tls(l);
		if (rc != 1) {
			int e = SSL_get_error(l->ssl, rc);
			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			long vr = SSL_get_verify_result(l->ssl);
			ERR_clear_error();
			tr_warn("irc: TLS handshake failed host=%s verify=%ld (%s)", l->host, vr,
			        X509_verify_cert_error_string(vr));
			irc_link_fail(l, vr != X509_V_OK ? TR_E_AUTH : TR_E_IO,
			              "TLS handshake failed");
			return;
		}
		irc_link_set_up(l);
	}
	char plain[16384];
	while (l->cb.fn) {
		int r = SSL_read(l->ssl, plain, sizeof(plain));
		if (r > 0) {
			l->cb.fn(l->cb.arg, IRC_LINK_DATA, TR_OK, NULL, plain, (size_t)r);
			continue;
		}
		int e = SSL_get_error(l->ssl, r);
		ERR_clear_error();
		if (e == SSL_ERROR_ZERO_RETURN)
			irc_link_fail(l, TR_E_CLOSED, "server closed the TLS session");
		else if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			irc_link_fail(l, TR_E_IO, "TLS read failed");
		break;
	}
	if (l->cb.fn)
		irc_link_flush_tls(l);
}

static void irc_link_on_connect(uv_connect_t *req, int status)
{
	struct irc_link *l = req->data;
	if (!l->cb.fn || status == UV_ECANCELED) {
		irc_link_unref(l);
		return;
	}
	if (status < 0) {
		tr_warn("irc: connect to %s:%d failed: %s", l->host, l->port, uv_strerror(status));
		irc_link_fail(l, TR_E_IO, "connect failed");
		irc_link_unref(l);
		return;
	}
	l->tcp.data = l;
	uv_tcp_nodelay(&l->tcp, 1);
	uv_read_start((uv_stream_t *)&l->tcp, irc_link_alloc, irc_link_on_read);
	if (!l->ssl) {
		irc_link_set_up(l);
	} else {
		int rc = SSL_do_handshake(l->ssl); /* writes the ClientHello into wbio */
		(void)rc;
		ERR_clear_error();
		irc_link_flush_tls(l);
	}
	irc_link_unref(l);
}

static void irc_link_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct irc_link *l = req->data;
	l->gai_pending = false;
	if (!l->cb.fn || status == UV_ECANCELED) {
		uv_freeaddrinfo(res);
		irc_link_unref(l);
		return;
	}
	if (status < 0 || !res) {
		tr_warn("irc: cannot resolve %s: %s", l->host, uv_strerror(status));
		uv_freeaddrinfo(res);
		irc_link_fail(l, TR_E_IO, "cannot resolve server");
		irc_link_unref(l);
		return;
	}
	l->creq.data = l;
	l->refs++;
	int rc = uv_tcp_connect(&l->creq, &l->tcp, res->ai_addr, irc_link_on_connect);
	uv_freeaddrinfo(res);
	if (rc < 0) {
		l->refs--;
		irc_link_fail(l, TR_E_IO, "connect failed");
	}
	irc_link_unref(l);
}

static void irc_link_closed(uv_handle_t *h)
{
	irc_link_unref(h->data);
}

struct irc_link *irc_link_open(uv_loop_t *loop, const char *host, int port, SSL_CTX *tls,
                               bool verify, const struct irc_link_cb *cb)
{
	struct irc_link *l = tr_xcalloc(1, sizeof(*l));
	l->cb = *cb;
	l->host = tr_xstrdup(host);
	l->port = port;
	l->refs = 1; /* the TCP handle */
	uv_tcp_init(loop, &l->tcp);
	l->tcp.data = l;
	if (tls) {
		l->ssl = SSL_new(tls);
		l->rbio = BIO_new(BIO_s_mem());
		l->wbio = BIO_new(BIO_s_mem());
		SSL_set_bio(l->ssl, l->rbio, l->wbio);
		SSL_set_connect_state(l->ssl);
		unsigned char addr[16];
		bool ip =
		    inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
		if (!ip)
			SSL_set_tlsext_host_name(l->ssl, host);
		if (verify) {
			X509_VERIFY_PARAM *vp = SSL_get0_param(l->ssl);
			if (ip)
				X509_VERIFY_PARAM_set1_ip_asc(vp, host);
			else
				SSL_set1_host(l->ssl, host);
			SSL_set_verify(l->ssl, SSL_VERIFY_PEER, NULL);
		} else {
			SSL_set_verify(l->ssl, SSL_VERIFY_NONE, NULL);
		}
	}
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	l->gai.data = l;
	l->refs++;
	l->gai_pending = true;
	int rc = uv_getaddrinfo(loop, &l->gai, irc_link_on_resolved, host, portstr, &hints);
	if (rc < 0) {
		l->refs--;
		l->gai_pending = false;
		irc_link_close(l);
		return NULL;
	}
	return l;
}

void irc_link_close(struct irc_link *l)
{
	if (!l)
		return;
	l->cb.fn = NULL;
	if (l->gai_pending)
		uv_cancel((uv_req_t *)&l->gai);
	if (!uv_is_closing((uv_handle_t *)&l->tcp))
		uv_close((uv_handle_t *)&l->tcp, irc_link_closed);
}

SSL_CTX *irc_tls_ctx_new(const char *ca_file, char err[TR_ERR_LEN])
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	if (!ctx) {
		snprintf(err, TR_ERR_LEN, "cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
	                 : SSL_CTX_set_default_verify_paths(ctx);
	if (ok != 1) {
		ERR_clear_error();
		snprintf(err, TR_ERR_LEN, "cannot load CA certificates%s", ca_file ? " file" : "");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

void irc_tls_ctx_free(SSL_CTX *ctx)
{
	SSL_CTX_free(ctx);
}
