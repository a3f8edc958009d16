/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl status: collects the retained messages on {prefix}/v1/status/+ and prints them.
 * MQTT does not say when the retained messages of a subscription are all sent, so the ctl
 * subscribes to a topic of its own in the same SUBSCRIBE and publishes a marker to it after:
 * the broker handles a client's packets in order, so the marker comes back after every
 * retained status. */
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "ctl.h"
#include "event.h"
#include "log.h"
#include "map.h"

struct ctl_status_row {
	char *connector, *network, *state, *detail;
	int64_t since; /* -1: unknown */
};

struct ctl_status {
	char *sync_topic;
	char nonce[33]; /* the marker now awaited */
	int mid;        /* its publish */
	bool echoed, acked;
	bool connected_once;
	struct tr_map rows; /* connector -> struct ctl_status_row */
};

static void ctl_status_row_free(struct ctl_status_row *r)
{
	if (!r)
		return;
	free(r->connector);
	free(r->network);
	free(r->state);
	free(r->detail);
	free(r);
}

static int ctl_status_cmp(const void *a, const void *b)
{
	const struct ctl_status_row *x = *(const struct ctl_status_row *const *)a;
	const struct ctl_status_row *y = *(const struct ctl_status_row *const *)b;
	return strcmp(x->connector, y->connector);
}

static void ctl_status_print(struct ctl_status *st)
{
	size_t n = st->rows.len, k = 0;
	if (n == 0) {
		fprintf(stderr, "trestle-ctl: no connector has published a status yet\n");
		return;
	}
	struct ctl_status_row **rows = tr_xcalloc(n, sizeof(*rows));
	const char *key;
	size_t klen;
	void *val;
	for (size_t it = 0; tr_map_next(&st->rows, &it, &key, &klen, &val);)
		rows[k++] = val;
	qsort(rows, k, sizeof(*rows), ctl_status_cmp);
	struct ctl_table t;
	ctl_table_init(&t, 5);
	static const char *const head[] = {"CONNECTOR", "NETWORK", "STATE", "SINCE", "DETAIL"};
	ctl_table_add(&t, head);
	for (size_t i = 0; i < k; i++) {
		char since[64] = "-";
		if (rows[i]->since >= 0)
			ctl_fmt_time(since, rows[i]->since, false);
		const char *row[] = {rows[i]->connector, rows[i]->network, rows[i]->state, since,
		                     rows[i]->detail};
		ctl_table_add(&t, row);
	}
	ctl_table_print(&t, stdout);
	ctl_table_cleanup(&t);
	free(rows);
}

static void ctl_status_take(struct ctl_status *st, const char *connector, const void *payload,
                            size_t len)
{
	struct ctl_status_row *row = tr_xcalloc(1, sizeof(*row));
	row->connector = tr_xstrdup(connector);
	row->since = -1;
	struct tr_status s;
	char err[TR_ERR_LEN];
	if (tr_status_decode(payload, len, &s, err) == TR_OK) {
		row->network = tr_xstrdup(s.network);
		row->state = tr_xstrdup(tr_state_name(s.state));
		row->since = s.since;
		row->detail = tr_xstrdup(s.detail);
		/* The topic names the connector; a payload that disagrees is worth seeing. */
		if (s.connector && strcmp(s.connector, connector) != 0) {
			free(row->detail);
			row->detail = tr_xasprintf("(payload says connector %s) %s", s.connector,
			                           s.detail ? s.detail : "");
		}
		tr_status_cleanup(&s);
	} else {
		row->state = tr_xstrdup("?");
		row->detail = tr_xasprintf("malformed status (%zu bytes): %s", len, err);
	}
	ctl_status_row_free(tr_map_put(&st->rows, row->connector, strlen(row->connector), row));
}

/* Done once the marker is back and acknowledged: closing the bus with a publish still
 * unacknowledged would wait out the close timeout. */
static void ctl_status_done(struct ctl *c)
{
	struct ctl_status *st = c->cmd;
	if (!st->echoed || !st->acked)
		return;
	ctl_status_print(st);
	ctl_finish(c, TR_EXIT_OK);
}

static void ctl_status_acked(void *arg, int mid)
{
	struct ctl *c = arg;
	struct ctl_status *st = c->cmd;
	if (mid != st->mid || c->finishing)
		return;
	st->acked = true;
	ctl_status_done(c);
}

static void ctl_status_msg(void *arg, const char *topic, const void *payload, size_t len,
                           bool retained)
{
	(void)retained;
	struct ctl *c = arg;
	struct ctl_status *st = c->cmd;
	if (c->finishing)
		return;
	if (strcmp(topic, st->sync_topic) == 0) {
		if (len == strlen(st->nonce) && memcmp(payload, st->nonce, len) == 0) {
			st->echoed = true;
			ctl_status_done(c);
		}
		return;
	}
	char *owned = NULL;
	const char *kind, *connector;
	if (tr_topic_split(c->prefix, topic, &owned, &kind, &connector) == TR_OK &&
	    strcmp(kind, "status") == 0)
		ctl_status_take(st, connector, payload, len);
	free(owned);
}

static void ctl_status_state(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct ctl *c = arg;
	struct ctl_status *st = c->cmd;
	if (!connected || c->finishing)
		return;
	st->connected_once = true;
	/* A fresh marker on every connect: subscriptions are made again, and so are the
	 * retained messages sent. */
	ctl_random_hex(st->nonce, 16);
	st->echoed = st->acked = false;
	if (tr_bus_publish(c->bus, st->sync_topic, st->nonce, strlen(st->nonce), false, &st->mid) !=
	    TR_OK)
		ctl_fail(c, TR_EXIT_FAIL, "could not publish to %s", st->sync_topic);
}

static void ctl_status_timeout(struct ctl *c)
{
	struct ctl_status *st = c->cmd;
	char *safe = ctl_url_safe(c->mqtt_url);
	if (st->connected_once)
		ctl_fail(c, TR_EXIT_FAIL,
		         "the broker at %s did not return the retained statuses within %d s (may "
		         "this user subscribe and publish to %s?)",
		         safe, CTL_WAIT_MS / 1000, st->sync_topic);
	else
		ctl_fail(c, TR_EXIT_FAIL, "cannot reach the broker at %s within %d s", safe,
		         CTL_WAIT_MS / 1000);
	free(safe);
}

int ctl_status(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "trestle-ctl status: unexpected argument '%s'\n", argv[1]);
		return ctl_usage("status", stderr, CTL_EXIT_USAGE);
	}
	struct ctl c;
	int rc = ctl_init(&c);
	if (rc != TR_EXIT_OK)
		return rc;
	struct ctl_status st = {.sync_topic = tr_xasprintf("%s/ctl/%s", c.prefix, c.client_id)};
	tr_map_init(&st.rows);
	c.cmd = &st;
	char *status_topic = tr_topic(c.prefix, "status", "+");
	const char *subs[] = {status_topic, st.sync_topic};
	ctl_deadline(&c, CTL_WAIT_MS, ctl_status_timeout);
	if (ctl_bus_start(&c, subs, 2, ctl_status_msg, ctl_status_state, ctl_status_acked) != TR_OK)
		ctl_finish(&c, TR_EXIT_CONFIG);
	rc = ctl_run(&c);
	const char *key;
	size_t klen;
	void *val;
	for (size_t it = 0; tr_map_next(&st.rows, &it, &key, &klen, &val);)
		ctl_status_row_free(val);
	tr_map_cleanup(&st.rows);
	free(status_topic);
	free(st.sync_topic);
	return rc;
}
