/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl health: the container health check of every Trestle image. A connector is
 * healthy when its retained status on the bus says online (or degraded); the router when its
 * /healthz answers 200; the ctl image when the broker answers. Exit 0 healthy, 1 not. The
 * images carry no shell or curl, so this one command covers them all (deploy/docker/). */
#include <errno.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include "alloc.h"
#include "ctl.h"
#include "env.h"
#include "event.h"
#include "log.h"
#include "url.h"

/* Declared here as well as in ctl.h (once hooked up there), so that this file builds on its own
 * under -Wmissing-prototypes. */
int ctl_health(int argc, char **argv);

/* A health check must answer well within Docker's default 30 s timeout. */
#define HEALTH_HTTP_TIMEOUT_S 5
#define HEALTH_HTTP_MAX       4096

struct ctl_health {
	char *connector; /* NULL: only the broker's answer is checked */
	char *sync_topic;
	char nonce[33];
	int mid;
	bool echoed, acked, connected_once;
	bool strict;
	bool have_status;
	struct tr_status status;
	char bad[TR_ERR_LEN]; /* a status that did not decode */
};

static void ctl_health_verdict(struct ctl *c, struct ctl_health *h)
{
	if (!h->connector) {
		printf("broker ok\n");
		ctl_finish(c, TR_EXIT_OK);
		return;
	}
	if (h->bad[0]) {
		ctl_fail(c, TR_EXIT_FAIL, "%s: malformed status: %s", h->connector, h->bad);
		return;
	}
	if (!h->have_status) {
		ctl_fail(c, TR_EXIT_FAIL, "%s: no status published yet", h->connector);
		return;
	}
	enum tr_state st = h->status.state;
	char *detail = ctl_fmt_field(h->status.detail ? h->status.detail : "",
	                             h->status.detail ? strlen(h->status.detail) : 0, 200, false);
	bool ok = st == TR_STATE_ONLINE || (st == TR_STATE_DEGRADED && !h->strict);
	if (ok) {
		printf("%s %s %s\n", h->connector, tr_state_name(st), detail);
		ctl_finish(c, TR_EXIT_OK);
	} else {
		ctl_fail(c, TR_EXIT_FAIL, "%s is %s: %s", h->connector, tr_state_name(st), detail);
	}
	free(detail);
}

static void ctl_health_done(struct ctl *c)
{
	struct ctl_health *h = c->cmd;
	if (h->echoed && h->acked)
		ctl_health_verdict(c, h);
}

static void ctl_health_acked(void *arg, int mid)
{
	struct ctl *c = arg;
	struct ctl_health *h = c->cmd;
	if (mid != h->mid || c->finishing)
		return;
	h->acked = true;
	ctl_health_done(c);
}

static void ctl_health_msg(void *arg, const char *topic, const void *payload, size_t len,
                           bool retained)
{
	(void)retained;
	struct ctl *c = arg;
	struct ctl_health *h = c->cmd;
	if (c->finishing)
		return;
	if (strcmp(topic, h->sync_topic) == 0) {
		if (len == strlen(h->nonce) && memcmp(payload, h->nonce, len) == 0) {
			h->echoed = true;
			ctl_health_done(c);
		}
		return;
	}
	/* The only other subscription is this connector's status topic. */
	if (h->have_status)
		tr_status_cleanup(&h->status);
	h->have_status = false;
	h->bad[0] = '\0';
	if (len == 0)
		return; /* a cleared retained status: as if none */
	if (tr_status_decode(payload, len, &h->status, h->bad) == TR_OK) {
		h->have_status = true;
		h->bad[0] = '\0';
	} else if (!h->bad[0]) {
		snprintf(h->bad, sizeof(h->bad), "undecodable (%zu bytes)", len);
	}
}

static void ctl_health_state(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct ctl *c = arg;
	struct ctl_health *h = c->cmd;
	if (!connected || c->finishing)
		return;
	h->connected_once = true;
	/* A fresh marker on every connect: the retained status is sent again with the
	 * subscriptions, before the marker comes back. */
	ctl_random_hex(h->nonce, 16);
	h->echoed = h->acked = false;
	if (tr_bus_publish(c->bus, h->sync_topic, h->nonce, strlen(h->nonce), false, &h->mid) !=
	    TR_OK)
		ctl_fail(c, TR_EXIT_FAIL, "could not publish to %s", h->sync_topic);
}

static void ctl_health_timeout(struct ctl *c)
{
	struct ctl_health *h = c->cmd;
	char *safe = ctl_url_safe(c->mqtt_url);
	if (h->connected_once)
		ctl_fail(c, TR_EXIT_FAIL,
		         "the broker at %s did not answer within %d s (may this login read %s?)",
		         safe, CTL_WAIT_MS / 1000, h->sync_topic);
	else
		ctl_fail(c, TR_EXIT_FAIL, "cannot reach the broker at %s within %d s", safe,
		         CTL_WAIT_MS / 1000);
	free(safe);
}

/* Reads the retained status of connector (NULL: just the broker's answer) over MQTT. */
static int ctl_health_bus(const char *connector, bool strict)
{
	struct ctl c;
	int rc = ctl_init(&c);
	if (rc != TR_EXIT_OK)
		return rc;
	struct ctl_health h = {
	    .connector = tr_xstrdup(connector),
	    .sync_topic = tr_xasprintf("%s/ctl/%s", c.prefix, c.client_id),
	    .strict = strict,
	};
	c.cmd = &h;
	char *status_topic = connector ? tr_topic(c.prefix, "status", connector) : NULL;
	const char *subs[2];
	size_t n = 0;
	if (status_topic)
		subs[n++] = status_topic;
	subs[n++] = h.sync_topic;
	ctl_deadline(&c, CTL_WAIT_MS, ctl_health_timeout);
	if (ctl_bus_start(&c, subs, n, ctl_health_msg, ctl_health_state, ctl_health_acked) != TR_OK)
		ctl_finish(&c, TR_EXIT_CONFIG);
	rc = ctl_run(&c);
	if (h.have_status)
		tr_status_cleanup(&h.status);
	free(status_topic);
	free(h.sync_topic);
	free(h.connector);
	return rc;
}

/* One blocking GET with a bounded wait: this process does nothing else meanwhile. */
static int ctl_health_get(const char *host, int port, const char *path, char *resp, size_t cap,
                          size_t *got, char err[TR_ERR_LEN])
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	struct addrinfo *res = NULL;
	char portstr[16];
	int fd = -1, rc = TR_E_IO;
	snprintf(portstr, sizeof(portstr), "%d", port);
	int gai = getaddrinfo(host, portstr, &hints, &res);
	if (gai != 0) {
		snprintf(err, TR_ERR_LEN, "cannot resolve %s: %s", host, gai_strerror(gai));
		goto out;
	}
	struct timeval tv = {.tv_sec = HEALTH_HTTP_TIMEOUT_S};
	snprintf(err, TR_ERR_LEN, "cannot connect to %s:%d", host, port);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		/* On Linux SO_SNDTIMEO also bounds connect(). */
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, TR_ERR_LEN, "cannot connect to %s:%d: %s", host, port,
		         strerror(errno));
		close(fd);
		fd = -1;
	}
	if (fd < 0)
		goto out;
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET /%s HTTP/1.0\r\nHost: %s:%d\r\nConnection: close\r\n\r\n",
	                 path ? path : "healthz", host, port);
	if (n < 0 || (size_t)n >= sizeof(req)) {
		snprintf(err, TR_ERR_LEN, "URL too long");
		goto out;
	}
	for (size_t off = 0; off < (size_t)n;) {
		ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
		if (w <= 0) {
			snprintf(err, TR_ERR_LEN, "send: %s", strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	*got = 0;
	while (*got < cap - 1) {
		ssize_t r = recv(fd, resp + *got, cap - 1 - *got, 0);
		if (r < 0) {
			snprintf(err, TR_ERR_LEN, "no answer from %s:%d: %s", host, port,
			         strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	resp[*got] = '\0';
	rc = TR_OK;
out:
	if (fd >= 0)
		close(fd);
	if (res)
		freeaddrinfo(res);
	return rc;
}

/* GET url (http://host:port[/path]); healthy on status 200. */
static int ctl_health_http(const char *url)
{
	struct tr_url u;
	char err[TR_ERR_LEN];
	if (tr_url_parse(url, &u, err) != TR_OK) {
		fprintf(stderr, "trestle-ctl health: bad --url '%s': %s\n", url, err);
		return CTL_EXIT_USAGE;
	}
	if (strcmp(u.scheme, "http") != 0) {
		fprintf(stderr, "trestle-ctl health: --url must be http://host:port[/path]\n");
		tr_url_cleanup(&u);
		return CTL_EXIT_USAGE;
	}
	int code = TR_EXIT_FAIL;
	char *resp = tr_xcalloc(1, HEALTH_HTTP_MAX);
	size_t got = 0;
	if (ctl_health_get(u.host, u.port, u.path, resp, HEALTH_HTTP_MAX, &got, err) != TR_OK) {
		fprintf(stderr, "trestle-ctl: %s\n", err);
		goto out;
	}
	/* "HTTP/1.x 200 ..." then headers, a blank line and the body ("ok", "broker down"...). */
	const char *body = strstr(resp, "\r\n\r\n");
	body = body ? body + 4 : "";
	size_t blen = strcspn(body, "\r\n");
	char *shown = ctl_fmt_field(body, blen, 200, false);
	if (strncmp(resp, "HTTP/1.", 7) == 0 && strncmp(resp + 8, " 200", 4) == 0) {
		printf("%s\n", shown);
		code = TR_EXIT_OK;
	} else {
		size_t slen = strcspn(resp, "\r\n");
		char *status = ctl_fmt_field(resp, slen, 100, false);
		fprintf(stderr, "trestle-ctl: %s answered %s: %s\n", url, status, shown);
		free(status);
	}
	free(shown);
out:
	free(resp);
	tr_url_cleanup(&u);
	return code;
}

/* The router's /healthz from its own TRESTLE_METRICS_ADDR (0.0.0.0 becomes loopback). */
static int ctl_health_router(const char *addr)
{
	if (!addr || !*addr) {
		fprintf(stderr, "trestle-ctl: TRESTLE_METRICS_ADDR is not set: the router serves "
		                "no /healthz to check\n");
		return TR_EXIT_CONFIG;
	}
	const char *colon = strrchr(addr, ':');
	if (!colon) {
		fprintf(stderr, "trestle-ctl: TRESTLE_METRICS_ADDR must be host:port\n");
		return TR_EXIT_CONFIG;
	}
	size_t hlen = (size_t)(colon - addr);
	char *host = tr_xasprintf("%.*s", (int)hlen, addr);
	if (hlen == 0 || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0) {
		free(host);
		host = tr_xstrdup("127.0.0.1");
	} else if (strcmp(host, "[::]") == 0 || strcmp(host, "::") == 0) {
		free(host);
		host = tr_xstrdup("[::1]");
	}
	char *url = tr_xasprintf("http://%s:%s/healthz", host, colon + 1);
	int rc = ctl_health_http(url);
	free(url);
	free(host);
	return rc;
}

int ctl_health(int argc, char **argv)
{
	const char *connector = NULL, *url = NULL;
	bool strict = false, broker = false;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--strict") == 0) {
			strict = true;
		} else if (strcmp(argv[i], "--broker") == 0) {
			broker = true;
		} else if (strcmp(argv[i], "--url") == 0 && i + 1 < argc) {
			url = argv[++i];
		} else if (argv[i][0] != '-' && !connector) {
			connector = argv[i];
		} else {
			fprintf(stderr, "trestle-ctl health: unexpected argument '%s'\n", argv[i]);
			return ctl_usage("health", stderr, CTL_EXIT_USAGE);
		}
	}
	if ((connector != NULL) + (url != NULL) + broker > 1) {
		fprintf(stderr, "trestle-ctl health: give one of CONNECTOR, --url, --broker\n");
		return ctl_usage("health", stderr, CTL_EXIT_USAGE);
	}
	if (connector && !tr_connector_name_valid(connector)) {
		fprintf(stderr, "trestle-ctl health: bad connector name '%s'\n", connector);
		return CTL_EXIT_USAGE;
	}
	if (url)
		return ctl_health_http(url);
	if (connector || broker)
		return ctl_health_bus(connector, strict);

	/* No argument: what this image runs, from the environment the image and compose set. */
	struct tr_env env;
	tr_env_init(&env, NULL);
	char *service = tr_env_str(&env, "TRESTLE_SERVICE", NULL);
	char *name = tr_env_str(&env, "TRESTLE_CONNECTOR", NULL);
	char *metrics = tr_env_str(&env, "TRESTLE_METRICS_ADDR", NULL);
	int rc = tr_env_finish(&env);
	tr_env_cleanup(&env);
	if (rc != TR_OK) {
		rc = TR_EXIT_CONFIG;
	} else if (!service || !*service) {
		fprintf(stderr, "trestle-ctl health: give CONNECTOR, --url or --broker (or set "
		                "TRESTLE_SERVICE, as the images do)\n");
		rc = CTL_EXIT_USAGE;
	} else if (strcmp(service, "router") == 0) {
		rc = ctl_health_router(metrics);
	} else if (strcmp(service, "ctl") == 0) {
		rc = ctl_health_bus(NULL, false);
	} else {
		/* A connector: its instance name defaults to the network's name (DESIGN §6). */
		const char *who = name && *name ? name : service;
		if (!tr_connector_name_valid(who)) {
			fprintf(stderr, "trestle-ctl health: bad connector name '%s'\n", who);
			rc = TR_EXIT_CONFIG;
		} else {
			rc = ctl_health_bus(who, strict);
		}
	}
	free(service);
	free(name);
	free(metrics);
	return rc;
}
