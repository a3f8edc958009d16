/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-ctl rooms: GET {prefix}:rooms from Redis (the router's JSON of tr_rooms_to_json) and
 * print it as a table. */
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "ctl.h"
#include "rooms.h"

struct ctl_rooms {
	char *key;
	bool sent;
};

static void ctl_rooms_print(const struct tr_rooms *r)
{
	struct ctl_table t;
	ctl_table_init(&t, 4);
	static const char *const head[] = {"ROOM", "CONNECTOR", "CHANNEL", "MODE"};
	ctl_table_add(&t, head);
	for (size_t i = 0; i < r->n_rooms; i++) {
		for (size_t j = 0; j < r->rooms[i].n_eps; j++) {
			const struct tr_endpoint *ep = &r->rooms[i].eps[j];
			const char *row[] = {r->rooms[i].name, ep->connector, ep->channel,
			                     tr_mode_name(ep->mode)};
			ctl_table_add(&t, row);
		}
	}
	ctl_table_print(&t, stdout);
	ctl_table_cleanup(&t);
}

static void ctl_rooms_reply(struct tr_redis *redis, redisReply *reply, void *arg)
{
	(void)redis;
	struct ctl *c = arg;
	struct ctl_rooms *st = c->cmd;
	if (c->finishing)
		return;
	if (!reply) {
		ctl_fail(c, TR_EXIT_FAIL, "lost the Redis connection before it answered");
		return;
	}
	if (reply->type == REDIS_REPLY_NIL) {
		ctl_fail(c, TR_EXIT_FAIL,
		         "no routing table in Redis: key %s is missing (has the router started "
		         "with a valid rooms file?)",
		         st->key);
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		ctl_fail(c, TR_EXIT_FAIL, "Redis refused GET %s: %.200s", st->key, reply->str);
		return;
	}
	if (reply->type != REDIS_REPLY_STRING) {
		ctl_fail(c, TR_EXIT_FAIL, "key %s does not hold a string", st->key);
		return;
	}
	json_error_t jerr;
	json_t *j = json_loadb(reply->str, reply->len, 0, &jerr);
	if (!j) {
		ctl_fail(c, TR_EXIT_FAIL, "key %s does not hold JSON: %s (line %d)", st->key,
		         jerr.text, jerr.line);
		return;
	}
	struct tr_rooms r;
	char err[TR_ERR_LEN];
	int rc = tr_rooms_from_json(j, &r, err);
	json_decref(j);
	if (rc != TR_OK) {
		ctl_fail(c, TR_EXIT_FAIL, "key %s holds an invalid routing table: %s", st->key,
		         err);
		return;
	}
	if (r.n_rooms == 0)
		fprintf(stderr, "trestle-ctl: the routing table is empty (no rooms)\n");
	else
		ctl_rooms_print(&r);
	tr_rooms_cleanup(&r);
	ctl_finish(c, TR_EXIT_OK);
}

static void ctl_rooms_state(void *arg, bool ready)
{
	struct ctl *c = arg;
	struct ctl_rooms *st = c->cmd;
	if (!ready || st->sent || c->finishing)
		return;
	const char *argv[] = {"GET", st->key};
	if (tr_redis_cmd(c->redis, ctl_rooms_reply, c, 2, argv, NULL) != TR_OK) {
		ctl_fail(c, TR_EXIT_FAIL, "could not send GET to Redis");
		return;
	}
	st->sent = true;
}

static void ctl_rooms_timeout(struct ctl *c)
{
	struct ctl_rooms *st = c->cmd;
	char *safe = ctl_url_safe(c->redis_url);
	if (st->sent)
		ctl_fail(c, TR_EXIT_FAIL, "Redis at %s did not answer within %d s", safe,
		         CTL_WAIT_MS / 1000);
	else
		ctl_fail(c, TR_EXIT_FAIL, "cannot reach Redis at %s within %d s", safe,
		         CTL_WAIT_MS / 1000);
	free(safe);
}

int ctl_rooms(int argc, char **argv)
{
	if (argc > 1) {
		fprintf(stderr, "trestle-ctl rooms: unexpected argument '%s'\n", argv[1]);
		return ctl_usage("rooms", stderr, CTL_EXIT_USAGE);
	}
	struct ctl c;
	int rc = ctl_init(&c);
	if (rc != TR_EXIT_OK)
		return rc;
	struct ctl_rooms st = {.key = tr_xasprintf("%s:rooms", c.prefix)};
	c.cmd = &st;
	ctl_deadline(&c, CTL_WAIT_MS, ctl_rooms_timeout);
	if (ctl_redis_start(&c, ctl_rooms_state) != TR_OK)
		ctl_finish(&c, TR_EXIT_CONFIG);
	rc = ctl_run(&c);
	free(st.key);
	return rc;
}
