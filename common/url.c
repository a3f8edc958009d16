/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* URL parsing for broker and Redis addresses. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "env.h"
#include "url.h"

static int tr_url_hex(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *tr_url_decode(const char *s, size_t n)
{
	char *out = tr_xmalloc(n + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n && tr_url_hex(s[i + 1]) >= 0 &&
		    tr_url_hex(s[i + 2]) >= 0) {
			int v = tr_url_hex(s[i + 1]) * 16 + tr_url_hex(s[i + 2]);
			if (v == 0) {
				free(out);
				return NULL;
			}
			out[o++] = (char)v;
			i += 2;
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

void tr_url_cleanup(struct tr_url *u)
{
	free(u->scheme);
	free(u->user);
	free(u->password);
	free(u->host);
	free(u->path);
	memset(u, 0, sizeof(*u));
}

int tr_url_parse(const char *s, struct tr_url *u, char err[TR_ERR_LEN])
{
	memset(u, 0, sizeof(*u));
	if (!s || !*s) {
		snprintf(err, TR_ERR_LEN, "empty URL");
		return TR_E_INVAL;
	}
	const char *sep = strstr(s, "://");
	if (!sep || sep == s) {
		snprintf(err, TR_ERR_LEN, "no scheme (expected scheme://host)");
		return TR_E_INVAL;
	}
	u->scheme = tr_xstrndup(s, (size_t)(sep - s));
	for (char *p = u->scheme; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	const char *auth = sep + 3;
	const char *end = auth + strcspn(auth, "/?#");
	const char *at = NULL;
	for (const char *p = auth; p < end; p++)
		if (*p == '@')
			at = p;
	const char *hostp = auth;
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));
		size_t ulen = colon ? (size_t)(colon - auth) : (size_t)(at - auth);
		if (ulen)
			u->user = tr_url_decode(auth, ulen);
		if (colon)
			u->password = tr_url_decode(colon + 1, (size_t)(at - colon - 1));
		if ((ulen && !u->user) || (colon && !u->password)) {
			snprintf(err, TR_ERR_LEN, "bad percent-encoding in credentials");
			goto bad;
		}
		hostp = at + 1;
	}
	const char *portp = NULL;
	if (*hostp == '[') {
		const char *rb = memchr(hostp, ']', (size_t)(end - hostp));
		if (!rb) {
			snprintf(err, TR_ERR_LEN, "unterminated IPv6 address");
			goto bad;
		}
		u->host = tr_xstrndup(hostp + 1, (size_t)(rb - hostp - 1));
		if (rb + 1 < end) {
			if (rb[1] != ':') {
				snprintf(err, TR_ERR_LEN, "junk after IPv6 address");
				goto bad;
			}
			portp = rb + 2;
		}
	} else {
		const char *colon = memchr(hostp, ':', (size_t)(end - hostp));
		u->host = tr_xstrndup(hostp, (size_t)((colon ? colon : end) - hostp));
		if (colon)
			portp = colon + 1;
	}
	if (!*u->host) {
		snprintf(err, TR_ERR_LEN, "no host");
		goto bad;
	}
	if (portp) {
		char tmp[16];
		size_t n = (size_t)(end - portp);
		long port = 0;
		if (n == 0 || n >= sizeof(tmp)) {
			snprintf(err, TR_ERR_LEN, "bad port");
			goto bad;
		}
		memcpy(tmp, portp, n);
		tmp[n] = '\0';
		if (tr_parse_long(tmp, 1, 65535, &port) != TR_OK) {
			snprintf(err, TR_ERR_LEN, "bad port (1-65535)");
			goto bad;
		}
		u->port = (int)port;
	} else if (strcmp(u->scheme, "mqtt") == 0) {
		u->port = 1883;
	} else if (strcmp(u->scheme, "mqtts") == 0) {
		u->port = 8883;
	} else if (strcmp(u->scheme, "redis") == 0) {
		u->port = 6379;
	} else {
		snprintf(err, TR_ERR_LEN, "no port and no default for scheme %s", u->scheme);
		goto bad;
	}
	if (*end == '/' && end[1])
		u->path = tr_xstrndup(end + 1, strcspn(end + 1, "?#"));
	return TR_OK;
bad:
	tr_url_cleanup(u);
	return TR_E_INVAL;
}

char *tr_url_redacted(const struct tr_url *u)
{
	const char *h6 = strchr(u->host, ':') ? "[" : "";
	const char *h6e = *h6 ? "]" : "";
	return tr_xasprintf("%s://%s%s%s%s%s%s:%d%s%s", u->scheme, u->user ? u->user : "",
	                    u->password ? ":***" : "", (u->user || u->password) ? "@" : "", h6,
	                    u->host, h6e, u->port, u->path ? "/" : "", u->path ? u->path : "");
}
