/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl tail [CONNECTOR]: one line per in/out/ack/status event from now on. Payloads come
 * from anyone who may publish, so each is decoded by common/event and every printed field is
 * escaped; one that does not decode is one warning line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "ctl.h"
#include "event.h"

#define CTL_TAIL_FIELD_MAX 256

struct ctl_tail {
	const char *connector; /* NULL: all */
	bool text;
	bool announced;
	/* As in ctl_status.c: a marker published after the SUBSCRIBE comes back once the
	 * subscriptions are in force, so "following" is only said when it is true. */
	char *sync_topic;
	char nonce[33];
};

/* Appends s. The line's maximum is above the largest line a decoded payload can make (every
 * field is capped), so an append cannot fail. */
static void ctl_tail_str(struct tr_buf *b, const char *s)
{
	int rc = tr_buf_appends(b, s);
	(void)rc;
}

/* Appends " ", "key=" when key is set, and the escaped, quoted-if-needed value ("-" for
 * NULL). */
static void ctl_tail_kv(struct tr_buf *b, const char *key, const char *s, size_t max)
{
	char *f = s ? ctl_fmt_field(s, strlen(s), max, true) : tr_xstrdup("-");
	ctl_tail_str(b, " ");
	if (key) {
		ctl_tail_str(b, key);
		ctl_tail_str(b, "=");
	}
	ctl_tail_str(b, f);
	free(f);
}

static void ctl_tail_field(struct tr_buf *b, const char *s, size_t max)
{
	ctl_tail_kv(b, NULL, s, max);
}

/* The start of every line: time, kind, connector, type, padded so columns mostly line up. */
static void ctl_tail_head(struct tr_buf *b, const char *kind, const char *connector,
                          const char *type)
{
	char now[64];
	ctl_fmt_time(now, tr_now_ms(), true);
	char *conn = ctl_fmt_field(connector, strlen(connector), 64, true);
	char *ty = ctl_fmt_field(type, strlen(type), 64, true);
	int rc = tr_buf_printf(b, "%s %-6s %-16s %-8s", now, kind, conn, ty);
	(void)rc; /* see ctl_tail_str */
	free(conn);
	free(ty);
}

static void ctl_tail_warn(struct tr_buf *b, const char *kind, const char *connector, size_t len,
                          const char *err)
{
	ctl_tail_head(b, "warn", connector, "-");
	int rc = tr_buf_printf(b, " malformed %s payload (%zu bytes): %s", kind, len, err);
	(void)rc; /* see ctl_tail_str */
}

static void ctl_tail_event(struct ctl_tail *st, struct tr_buf *b, const char *kind,
                           const char *connector, const void *payload, size_t len)
{
	struct tr_event ev;
	char err[TR_ERR_LEN];
	bool out = strcmp(kind, "out") == 0;
	if (tr_event_decode(payload, len, out, &ev, err) != TR_OK) {
		ctl_tail_warn(b, kind, connector, len, err);
		return;
	}
	ctl_tail_head(b, kind, connector, tr_event_type_name(ev.type));
	ctl_tail_field(b, ev.id, CTL_TAIL_FIELD_MAX);
	ctl_tail_field(b, out ? ev.dest.channel : ev.channel, CTL_TAIL_FIELD_MAX);
	const char *author = ev.author.display ? ev.author.display
	                     : ev.author.name  ? ev.author.name
	                                       : ev.author.id;
	ctl_tail_field(b, author, CTL_TAIL_FIELD_MAX);
	char num[32];
	snprintf(num, sizeof(num), " len=%zu", ev.text ? strlen(ev.text) : (size_t)0);
	ctl_tail_str(b, num);
	if (out)
		ctl_tail_kv(b, "room", ev.room, CTL_TAIL_FIELD_MAX);
	if (st->text && ev.text)
		ctl_tail_kv(b, "text", ev.text, TR_EVENT_MAX_TEXT);
	tr_event_cleanup(&ev);
}

static void ctl_tail_ack(struct tr_buf *b, const char *connector, const void *payload, size_t len)
{
	struct tr_ack a;
	char err[TR_ERR_LEN];
	if (tr_ack_decode(payload, len, &a, err) != TR_OK) {
		ctl_tail_warn(b, "ack", connector, len, err);
		return;
	}
	ctl_tail_head(b, "ack", connector, a.ok ? "ok" : "failed");
	ctl_tail_field(b, a.id, CTL_TAIL_FIELD_MAX);
	ctl_tail_field(b, a.dest_channel, CTL_TAIL_FIELD_MAX);
	ctl_tail_field(b, NULL, 0);
	if (a.ok) {
		ctl_tail_kv(b, "msgid", a.msgid, CTL_TAIL_FIELD_MAX);
	} else {
		ctl_tail_kv(b, "error", a.error, CTL_TAIL_FIELD_MAX);
		ctl_tail_kv(b, "detail", a.detail, CTL_TAIL_FIELD_MAX);
	}
	tr_ack_cleanup(&a);
}

static void ctl_tail_status(struct tr_buf *b, const char *connector, const void *payload,
                            size_t len)
{
	struct tr_status s;
	char err[TR_ERR_LEN];
	if (tr_status_decode(payload, len, &s, err) != TR_OK) {
		ctl_tail_warn(b, "status", connector, len, err);
		return;
	}
	ctl_tail_head(b, "status", connector, tr_state_name(s.state));
	ctl_tail_str(b, " - - -");
	ctl_tail_kv(b, "network", s.network, CTL_TAIL_FIELD_MAX);
	ctl_tail_kv(b, "detail", s.detail, CTL_TAIL_FIELD_MAX);
	tr_status_cleanup(&s);
}

static void ctl_tail_msg(void *arg, const char *topic, const void *payload, size_t len,
                         bool retained)
{
	struct ctl *c = arg;
	struct ctl_tail *st = c->cmd;
	/* Retained statuses are history ('trestle-ctl status' shows them); tail shows news. */
	if (retained || c->finishing)
		return;
	if (strcmp(topic, st->sync_topic) == 0) {
		if (!st->announced && len == strlen(st->nonce) &&
		    !memcmp(payload, st->nonce, len)) {
			st->announced = true;
			/* From here on the bus reconnects by itself; only the start is bounded. */
			uv_timer_stop(&c->deadline);
			fprintf(stderr,
			        "trestle-ctl: following %s/v1/{in,out,ack,status}/%s (Ctrl-C to "
			        "stop)\n",
			        c->prefix, st->connector ? st->connector : "+");
		}
		return;
	}
	char *owned = NULL;
	const char *kind, *connector;
	if (tr_topic_split(c->prefix, topic, &owned, &kind, &connector) != TR_OK)
		return;
	struct tr_buf line;
	tr_buf_init(&line, 4 * TR_EVENT_MAX_PAYLOAD);
	if (strcmp(kind, "in") == 0 || strcmp(kind, "out") == 0)
		ctl_tail_event(st, &line, kind, connector, payload, len);
	else if (strcmp(kind, "ack") == 0)
		ctl_tail_ack(&line, connector, payload, len);
	else if (strcmp(kind, "status") == 0)
		ctl_tail_status(&line, connector, payload, len);
	if (line.len) {
		fwrite(line.data, 1, line.len, stdout);
		fputc('\n', stdout);
	}
	tr_buf_cleanup(&line);
	free(owned);
}

static void ctl_tail_state(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct ctl *c = arg;
	struct ctl_tail *st = c->cmd;
	if (!connected || c->finishing || st->announced)
		return;
	ctl_random_hex(st->nonce, 16);
	if (tr_bus_publish(c->bus, st->sync_topic, st->nonce, strlen(st->nonce), false, NULL) !=
	    TR_OK)
		ctl_fail(c, TR_EXIT_FAIL, "could not publish to %s", st->sync_topic);
}

static void ctl_tail_timeout(struct ctl *c)
{
	char *safe = ctl_url_safe(c->mqtt_url);
	struct ctl_tail *st = c->cmd;
	if (c->bus && tr_bus_connected(c->bus))
		ctl_fail(c, TR_EXIT_FAIL,
		         "the broker at %s did not confirm the subscriptions within %d s (may this "
		         "user subscribe and publish to %s?)",
		         safe, CTL_WAIT_MS / 1000, st->sync_topic);
	else
		ctl_fail(c, TR_EXIT_FAIL, "cannot reach the broker at %s within %d s", safe,
		         CTL_WAIT_MS / 1000);
	free(safe);
}

int ctl_tail(int argc, char **argv)
{
	struct ctl_tail st = {0};
	bool dashdash = false;
	for (int i = 1; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--") == 0) {
			dashdash = true;
		} else if (!dashdash && strcmp(argv[i], "--text") == 0) {
			st.text = true;
		} else if (!dashdash && argv[i][0] == '-') {
			fprintf(stderr, "trestle-ctl tail: unknown option '%s'\n", argv[i]);
			return ctl_usage("tail", stderr, CTL_EXIT_USAGE);
		} else if (!st.connector) {
			st.connector = argv[i];
		} else {
			fprintf(stderr, "trestle-ctl tail: one CONNECTOR at most\n");
			return ctl_usage("tail", stderr, CTL_EXIT_USAGE);
		}
	}
	if (st.connector && !tr_connector_name_valid(st.connector)) {
		fprintf(
		    stderr,
		    "trestle-ctl tail: '%s' is not a connector name ([a-z0-9][a-z0-9_-]{0,62})\n",
		    st.connector);
		return CTL_EXIT_USAGE;
	}
	struct ctl c;
	int rc = ctl_init(&c);
	if (rc != TR_EXIT_OK)
		return rc;
	c.cmd = &st;
	/* Lines go out as they come, also into a pipe. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	static const char *const kinds[] = {"in", "out", "ack", "status"};
	char *subs[5];
	for (size_t i = 0; i < 4; i++)
		subs[i] = tr_topic(c.prefix, kinds[i], st.connector ? st.connector : "+");
	st.sync_topic = tr_xasprintf("%s/ctl/%s", c.prefix, c.client_id);
	subs[4] = st.sync_topic;
	ctl_signals(&c);
	ctl_deadline(&c, CTL_WAIT_MS, ctl_tail_timeout);
	if (ctl_bus_start(&c, (const char *const *)subs, 5, ctl_tail_msg, ctl_tail_state, NULL) !=
	    TR_OK)
		ctl_finish(&c, TR_EXIT_CONFIG);
	rc = ctl_run(&c);
	for (size_t i = 0; i < 5; i++)
		free(subs[i]);
	return rc;
}
