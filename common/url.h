/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Parser for the service URLs of DESIGN §6: mqtt[s]://[user[:password]@]host[:port] and
 * redis://[:password@]host[:port][/db]. User and password are percent-decoded. */
#ifndef TRESTLE_COMMON_URL_H
#define TRESTLE_COMMON_URL_H

#include "err.h"

struct tr_url {
	char *scheme;   /* lower-case: "mqtt", "mqtts", "redis" */
	char *user;     /* NULL when absent */
	char *password; /* NULL when absent; never log it */
	char *host;     /* without brackets for IPv6 */
	int port;       /* the scheme's default when absent */
	char *path;     /* after the first '/', without it; NULL when absent */
};

/* Parses s into u (owned by u; release with tr_url_cleanup). Known schemes get their default
 * port (mqtt 1883, mqtts 8883, redis 6379). On error fills err and returns TR_E_INVAL. */
int tr_url_parse(const char *s, struct tr_url *u, char err[TR_ERR_LEN]) TR_MUST_CHECK;
void tr_url_cleanup(struct tr_url *u);
/* A copy of the URL fit for logs: the password replaced by "***". Newly allocated. */
char *tr_url_redacted(const struct tr_url *u);

#endif
