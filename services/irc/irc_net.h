/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-irc's byte stream (irc_net.c): resolve + TCP on the libuv loop, optional TLS through
 * OpenSSL memory BIOs. Private to services/irc/. */
#ifndef TRESTLE_SERVICES_IRC_NET_H
#define TRESTLE_SERVICES_IRC_NET_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "err.h"

struct irc_link;

enum irc_link_what {
	IRC_LINK_UP,   /* connected (and TLS established): the session may start */
	IRC_LINK_DATA, /* bytes from the server (borrowed for the call) */
	IRC_LINK_LOST, /* err and a detail for the log; close the link */
};

struct irc_link_cb {
	void (*fn)(void *arg, enum irc_link_what what, int err, const char *detail,
	           const char *data, size_t len);
	void *arg;
};

/* Starts resolving and connecting host:port; tls NULL for plain TCP. Every outcome is
 * reported through cb (never from inside this call). NULL if the resolver cannot start. */
struct irc_link *irc_link_open(uv_loop_t *loop, const char *host, int port, SSL_CTX *tls,
                               bool verify, const struct irc_link_cb *cb);
/* Writes bytes (copied). TR_E_AGAIN before IRC_LINK_UP, TR_E_IO on a TLS failure. */
int irc_link_write(struct irc_link *l, const char *data, size_t len) TR_MUST_CHECK;
/* Abandons the link: no callback runs afterwards; memory goes when libuv is done with it. */
void irc_link_close(struct irc_link *l);

/* A client TLS context with the system CAs, or those of ca_file. NULL with err filled. */
SSL_CTX *irc_tls_ctx_new(const char *ca_file, char err[TR_ERR_LEN]);
void irc_tls_ctx_free(SSL_CTX *ctx);

#endif
