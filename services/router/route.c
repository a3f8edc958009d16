/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The routing pipeline. Every message from the broker becomes a job: journalled, resolved by
 * one Lua script call in Redis (dedupe + id mapping, pipelined), then published in per-channel
 * order, and marked done in the journal once the broker has acknowledged every out event.
 * Owns the bus, the Redis connection, the journal, the table, metrics and the health server. */
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>
#include "alloc.h"
#include "backoff.h"
#include "bus.h"
#include "event.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "router.h"

#define ROUTER_DEDUPE_TTL_S  "86400"
#define ROUTER_PAUSE_AT      10000 /* jobs in memory before reading from the broker pauses */
#define ROUTER_RESUME_AT     2000
#define ROUTER_STOP_GRACE_MS 10000

/* Dedupe and mapping in one round trip. ARGV: prefix, id, token, check_dedupe, dedupe_ttl,
 * retention_ttl, origin endpoint, type, msgid, target, reply_to, thread, then destination
 * endpoints. The dedupe key holds the token of the job that claimed it, so a retry of the same
 * job (reply lost when Redis went away, or journal replay) is not taken for a duplicate.
 * Returns {"dup"} or {"ok", targets, reply_tos, threads}: per reference one array with each
 * destination's id ('?' = sent but not acknowledged yet, '!' = failed), or an empty array. */
static const char router_route_lua[] =
    "local P=ARGV[1]\n"
    "if ARGV[4]=='1' then\n"
    "  if not redis.call('SET',P..':d:'..ARGV[2],ARGV[3],'NX','EX',ARGV[5]) then\n"
    "    if redis.call('GET',P..':d:'..ARGV[2])~=ARGV[3] then return {'dup'} end\n"
    "  end\n"
    "end\n"
    "local ttl,oep,msgid=ARGV[6],ARGV[7],ARGV[9]\n"
    "local dests={}\n"
    "for i=13,#ARGV do dests[#dests+1]=ARGV[i] end\n"
    "if ARGV[8]=='message' and msgid~='' then\n"
    "  local g=oep..':'..msgid\n"
    "  local gk=P..':g:'..g\n"
    "  redis.call('HSETNX',gk,oep,msgid)\n"
    "  for i=1,#dests do redis.call('HSETNX',gk,dests[i],'?') end\n"
    "  redis.call('EXPIRE',gk,ttl)\n"
    "  redis.call('SET',P..':e:'..ARGV[2],g,'EX',ttl)\n"
    "  redis.call('SET',P..':r:'..g,g,'EX',ttl)\n"
    "end\n"
    "local out={'ok'}\n"
    "for k=10,12 do\n"
    "  local vals={}\n"
    "  if ARGV[k]~='' and #dests>0 then\n"
    "    local g=redis.call('GET',P..':r:'..oep..':'..ARGV[k])\n"
    "    if g then vals=redis.call('HMGET',P..':g:'..g,unpack(dests)) end\n"
    "  end\n"
    "  out[#out+1]=vals\n"
    "end\n"
    "return out\n";

/* An ack teaches the mapping. ARGV: prefix, event id, destination endpoint, ok, msgid, ttl. */
static const char router_ack_lua[] =
    "local P=ARGV[1]\n"
    "local g=redis.call('GET',P..':e:'..ARGV[2])\n"
    "if not g then return 0 end\n"
    "local gk=P..':g:'..g\n"
    "if ARGV[4]=='1' and ARGV[5]~='' then\n"
    "  redis.call('HSET',gk,ARGV[3],ARGV[5])\n"
    "  redis.call('SET',P..':r:'..ARGV[3]..':'..ARGV[5],g,'EX',ARGV[6])\n"
    "elseif redis.call('HGET',gk,ARGV[3])=='?' then\n"
    "  redis.call('HSET',gk,ARGV[3],'!')\n"
    "end\n"
    "return 1\n";

enum job_state { J_NEW, J_SENT, J_WAIT, J_READY, J_DROP };

struct chanq;

struct job {
	struct job *prev, *next; /* every unfinished job, in arrival order */
	struct job *qnext;       /* the origin channel's queue */
	struct chanq *q;
	struct router *r;
	uint64_t seq;
	char kind; /* 'i' event, 'a' ack */
	char token[48];
	struct tr_event ev;
	struct tr_ack ack;
	char *ack_ep;
	struct rt_table *table;
	const struct rt_origin *origin;
	enum job_state state;
	bool in_queue;
	bool counted; /* in n_unpublished */
	uint64_t t0_ns;
	uint64_t wait_deadline;
	char **ids; /* 3 per destination: target, reply_to, thread; NULL unknown */
	unsigned outs_pending;
};

struct chanq {
	char *key;
	struct job *head, *tail;
};

struct router_series {
	struct tr_metric *in, *out;
};

struct router {
	const struct router_config *cfg;
	uv_loop_t *loop;
	struct tr_bus *bus;
	struct tr_redis *redis;
	struct journal *journal;
	struct rt_table *table;
	bool table_stored;
	char *store_text;  /* the table's JSON until Redis has it */
	char *store_conns; /* the connectors' JSON list until Redis has it */
	json_t *cur_conns; /* connectors of the table in force */
	struct tr_metrics *metrics;
	struct tr_httpd *httpd;
	struct job *first, *last;
	size_t n_jobs, n_waiting, n_unpublished;
	bool have_table; /* a follower has read its table from Redis */
	struct tr_map chanqs;
	struct tr_map mids;
	struct tr_map series;
	char nonce[17];
	uint64_t next_token;
	char route_sha[41], ack_sha[41];
	unsigned scripts_loading;
	bool paused, stopping;
	int exit_code;
	char retention_s[24];
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t wait_timer, retry_timer, stop_timer, trim_timer, script_timer;
	struct tr_metric *m_acks_ok, *m_acks_failed, *m_latency, *m_redis_rc, *m_broker_rc,
	    *m_depth, *m_rooms;
};

static void router_send_job(struct router *r, struct job *j);
static void router_kick(struct router *r);
static void router_maybe_stop(struct router *r);
static void router_on_kick_timer(uv_timer_t *t);

static uint64_t router_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- metrics ---------------------------------------------------------------------------- */

static void router_count_drop(struct router *r, const char *reason)
{
	char labels[64];
	snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
	tr_metric_inc(tr_metrics_counter(r->metrics, "trestle_router_dropped_total",
	                                 "Events dropped, by reason.", labels));
}

static struct router_series *router_series(struct router *r, const char *connector)
{
	struct router_series *s = tr_map_get(&r->series, connector, strlen(connector));
	if (s)
		return s;
	s = tr_xcalloc(1, sizeof(*s));
	char *esc = tr_metrics_label_escape(connector);
	char *labels = tr_xasprintf("connector=\"%s\"", esc);
	s->in = tr_metrics_counter(r->metrics, "trestle_router_events_in_total",
	                           "Events received from connectors.", labels);
	s->out = tr_metrics_counter(r->metrics, "trestle_router_events_out_total",
	                            "Events published to connectors, by destination.", labels);
	free(labels);
	free(esc);
	tr_map_put(&r->series, connector, strlen(connector), s);
	return s;
}

/* ---- jobs ------------------------------------------------------------------------------- */

static void router_job_free(struct job *j)
{
	tr_event_cleanup(&j->ev);
	tr_ack_cleanup(&j->ack);
	free(j->ack_ep);
	if (j->ids) {
		for (size_t i = 0; i < 3 * j->origin->n_dests; i++)
			free(j->ids[i]);
		free(j->ids);
	}
	rt_table_unref(j->table);
	free(j);
}

static bool router_follows_redis(const struct router *r);

/* A follower without its table yet stays away from the broker. */
static bool router_follows_waiting(const struct router *r)
{
	return router_follows_redis(r) && !r->have_table;
}

/* Back-pressure counts the jobs not yet published (waiting for Redis or for an ack): those
 * published and waiting only for the broker's PUBACK need the connection to finish. */
static void router_flow(struct router *r)
{
	tr_metric_set(r->m_depth, (double)r->n_jobs);
	if (r->stopping || router_follows_waiting(r))
		return;
	if (!r->paused && r->n_unpublished >= ROUTER_PAUSE_AT) {
		r->paused = true;
		tr_warn("%zu events waiting; leaving the broker until they drain",
		        r->n_unpublished);
		tr_bus_pause(r->bus, true);
	} else if (r->paused && r->n_unpublished <= ROUTER_RESUME_AT) {
		r->paused = false;
		tr_info("queue down to %zu; back to the broker", r->n_unpublished);
		tr_bus_pause(r->bus, false);
	}
}

static void router_uncount(struct router *r, struct job *j)
{
	if (j->counted) {
		j->counted = false;
		r->n_unpublished--;
	}
}

/* The job is complete: out of the journal and out of memory. */
static void router_job_finish(struct router *r, struct job *j)
{
	router_uncount(r, j);
	journal_done(r->journal, j->seq);
	if (j->prev)
		j->prev->next = j->next;
	else
		r->first = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		r->last = j->prev;
	r->n_jobs--;
	router_job_free(j);
	router_flow(r);
	if (r->stopping)
		router_maybe_stop(r);
}

static struct job *router_job_new(struct router *r, uint64_t seq, char kind, const char *token)
{
	struct job *j = tr_xcalloc(1, sizeof(*j));
	j->r = r;
	j->seq = seq;
	j->kind = kind;
	snprintf(j->token, sizeof(j->token), "%s", token);
	j->t0_ns = router_now_ns();
	j->prev = r->last;
	if (r->last)
		r->last->next = j;
	else
		r->first = j;
	r->last = j;
	r->n_jobs++;
	r->n_unpublished++;
	j->counted = true;
	return j;
}

static const char *router_id_of(const struct job *j, size_t dest, int ref)
{
	if (!j->ids)
		return NULL;
	const char *v = j->ids[dest * 3 + (size_t)ref];
	if (!v || strcmp(v, "?") == 0 || strcmp(v, "!") == 0)
		return NULL;
	return v;
}

static void router_publish_job(struct router *r, struct job *j)
{
	const struct rt_origin *o = j->origin;
	json_t *obj = j->ev.json;
	double lat = (double)(router_now_ns() - j->t0_ns) / 1e9;
	for (size_t i = 0; i < o->n_dests; i++) {
		const struct rt_dest *dd = &j->table->dests[o->first + i];
		const struct rt_origin *d = rt_dest_origin(j->table, dd);
		const char *target = router_id_of(j, i, 0);
		if ((j->ev.type == TR_EV_DELETE || j->ev.type == TR_EV_REACTION) && !target) {
			router_count_drop(r, "unmapped");
			continue;
		}
		json_t *dest =
		    json_pack("{s:s, s:s}", "connector", d->connector, "channel", d->channel);
		static const char *const refs[3] = {"target", "reply_to", "thread"};
		for (int k = 0; k < 3; k++) {
			const char *v = router_id_of(j, i, k);
			if (v)
				json_object_set_new(dest, refs[k], json_string(v));
		}
		json_object_set_new(obj, "room", json_string(rt_dest_room(j->table, dd)));
		json_object_set_new(obj, "dest", dest);
		char *payload = json_dumps(obj, JSON_COMPACT);
		if (!payload) {
			tr_error("cannot encode out event id=%s", j->ev.id);
			continue;
		}
		char *topic = tr_topic(r->cfg->prefix, "out", d->connector);
		int mid = 0;
		int rc = tr_bus_publish(r->bus, topic, payload, strlen(payload), false, &mid);
		free(topic);
		free(payload);
		if (rc != TR_OK) {
			router_count_drop(r, "too_big");
			continue;
		}
		char key[16];
		int kl = snprintf(key, sizeof(key), "%d", mid);
		tr_map_put(&r->mids, key, (size_t)kl, j);
		j->outs_pending++;
		tr_metric_inc(router_series(r, d->connector)->out);
	}
	tr_metric_observe(r->m_latency, lat);
	tr_debug("routed id=%s type=%s outs=%u", j->ev.id, tr_event_type_name(j->ev.type),
	         j->outs_pending);
}

/* Publishes every job at the head of the channel queue that is ready, in order. */
static void router_drain(struct router *r, struct chanq *q)
{
	while (q->head && (q->head->state == J_READY || q->head->state == J_DROP)) {
		struct job *j = q->head;
		q->head = j->qnext;
		if (!q->head)
			q->tail = NULL;
		j->in_queue = false;
		router_uncount(r, j);
		if (j->state == J_READY)
			router_publish_job(r, j);
		if (j->outs_pending == 0)
			router_job_finish(r, j);
	}
	if (!q->head) {
		tr_map_del(&r->chanqs, q->key, strlen(q->key));
		free(q->key);
		free(q);
	}
}

static void router_event_reply(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	struct job *j = arg;
	struct router *r = j->r;
	if (!reply) {
		j->state = J_NEW; /* sent again when Redis is back */
		return;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		tr_error("redis route script failed id=%s: %.*s", j->ev.id, (int)reply->len,
		         reply->str);
		j->state = J_NEW;
		if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
			r->route_sha[0] = '\0';
		uv_timer_start(&r->retry_timer, router_on_kick_timer, 1000, 0);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
	    reply->element[0]->type != REDIS_REPLY_STRING) {
		tr_error("redis route script: unexpected reply id=%s", j->ev.id);
		j->state = J_NEW;
		uv_timer_start(&r->retry_timer, router_on_kick_timer, 1000, 0);
		return;
	}
	if (strcmp(reply->element[0]->str, "dup") == 0) {
		tr_debug("duplicate id=%s", j->ev.id);
		router_count_drop(r, "duplicate");
		j->state = J_DROP;
		router_drain(r, j->q);
		return;
	}
	size_t n = j->origin->n_dests;
	bool pending = false;
	if (!j->ids)
		j->ids = tr_xcalloc(3 * (n ? n : 1), sizeof(char *));
	for (size_t k = 0; k < 3 && k + 1 < reply->elements; k++) {
		redisReply *arr = reply->element[k + 1];
		if (arr->type != REDIS_REPLY_ARRAY)
			continue;
		for (size_t i = 0; i < n && i < arr->elements; i++) {
			redisReply *v = arr->element[i];
			free(j->ids[i * 3 + k]);
			j->ids[i * 3 + k] =
			    v->type == REDIS_REPLY_STRING ? tr_xstrdup(v->str) : NULL;
			if (v->type == REDIS_REPLY_STRING && strcmp(v->str, "?") == 0)
				pending = true;
		}
	}
	uint64_t now = uv_now(r->loop);
	if (pending && !j->wait_deadline)
		j->wait_deadline = now + (uint64_t)r->cfg->ack_wait_ms;
	if (pending && now < j->wait_deadline) {
		/* The message it refers to is on its way to a destination that has not acked
		 * yet: ask again shortly, so a quick edit or reaction still maps. */
		j->state = J_WAIT;
		if (r->n_waiting++ == 0)
			uv_timer_start(&r->wait_timer, router_on_kick_timer, 20, 20);
		return;
	}
	j->state = J_READY;
	router_drain(r, j->q);
}

static void router_ack_reply(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	struct job *j = arg;
	struct router *r = j->r;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		if (reply) {
			tr_error("redis ack script failed id=%s: %.*s", j->ack.id, (int)reply->len,
			         reply->str);
			if (strncmp(reply->str, "NOSCRIPT", 8) == 0)
				r->ack_sha[0] = '\0';
			uv_timer_start(&r->retry_timer, router_on_kick_timer, 1000, 0);
		}
		j->state = J_NEW;
		return;
	}
	router_job_finish(r, j);
	if (r->n_waiting)
		router_kick(r);
}

static void router_send_job(struct router *r, struct job *j)
{
	if (!tr_redis_ready(r->redis) || !r->route_sha[0] || !r->ack_sha[0])
		return;
	int rc;
	if (j->kind == 'a') {
		const char *argv[] = {"EVALSHA",
		                      r->ack_sha,
		                      "0",
		                      r->cfg->prefix,
		                      j->ack.id,
		                      j->ack_ep,
		                      j->ack.ok ? "1" : "0",
		                      j->ack.msgid ? j->ack.msgid : "",
		                      r->retention_s};
		rc = tr_redis_cmd(r->redis, router_ack_reply, j, (int)TR_ARRAY_LEN(argv), argv,
		                  NULL);
	} else {
		const struct rt_origin *o = j->origin;
		size_t argc = 15 + o->n_dests;
		const char **argv = tr_xcalloc(argc, sizeof(char *));
		const struct tr_event *ev = &j->ev;
		size_t a = 0;
		argv[a++] = "EVALSHA";
		argv[a++] = r->route_sha;
		argv[a++] = "0";
		argv[a++] = r->cfg->prefix;
		argv[a++] = ev->id;
		argv[a++] = j->token;
		argv[a++] = j->wait_deadline ? "0" : "1";
		argv[a++] = ROUTER_DEDUPE_TTL_S;
		argv[a++] = r->retention_s;
		argv[a++] = o->ep;
		argv[a++] = tr_event_type_name(ev->type);
		argv[a++] = ev->msgid ? ev->msgid : "";
		argv[a++] = ev->target ? ev->target : "";
		argv[a++] = ev->reply_to ? ev->reply_to : "";
		argv[a++] = ev->thread ? ev->thread : "";
		for (size_t i = 0; i < o->n_dests; i++)
			argv[a++] = rt_dest_origin(j->table, &j->table->dests[o->first + i])->ep;
		rc = tr_redis_cmd(r->redis, router_event_reply, j, (int)a, argv, NULL);
		free(argv);
	}
	if (rc == TR_OK)
		j->state = J_SENT;
}

/* Sends every job that is not in flight: new ones after Redis came back, and waiting ones. */
static void router_kick(struct router *r)
{
	if (r->n_waiting) {
		for (struct job *j = r->first; j; j = j->next) {
			if (j->state == J_WAIT) {
				j->state = J_NEW;
				r->n_waiting--;
			}
		}
		uv_timer_stop(&r->wait_timer);
	}
	for (struct job *j = r->first; j; j = j->next)
		if (j->state == J_NEW)
			router_send_job(r, j);
}

static void router_on_kick_timer(uv_timer_t *t)
{
	router_kick(t->data);
}

/* Takes one payload from the broker (or the journal): validates, journals, queues. */
static void router_take(struct router *r, const char *kind_s, const char *connector,
                        const char *payload, size_t len, uint64_t replay_seq,
                        const char *replay_token)
{
	char err[TR_ERR_LEN];
	char kind = strcmp(kind_s, "ack") == 0 ? 'a' : 'i';
	struct tr_event ev = {0};
	struct tr_ack ack = {0};
	int rc = kind == 'a' ? tr_ack_decode(payload, len, &ack, err)
	                     : tr_event_decode(payload, len, false, &ev, err);
	if (rc != TR_OK) {
		const char *reason = rc == TR_E_TOOBIG                            ? "too_big"
		                     : rc == TR_E_UTF8                            ? "bad_utf8"
		                     : strstr(err, "JSON") || strstr(err, "json") ? "bad_json"
		                                                                  : "invalid";
		if (kind == 'a')
			reason = "bad_ack";
		tr_warn("dropped %s from %s: %s (%zu bytes)", kind_s, connector, err, len);
		router_count_drop(r, reason);
		if (replay_seq)
			journal_done(r->journal, replay_seq);
		return;
	}
	const char *claimed = kind == 'a' ? ack.dest_connector : ev.connector;
	if (strcmp(claimed, connector) != 0) {
		tr_warn("dropped %s from %s: it names connector %s", kind_s, connector, claimed);
		router_count_drop(r, kind == 'a' ? "bad_ack" : "topic_mismatch");
		goto drop;
	}
	const struct rt_origin *o = NULL;
	if (kind == 'i') {
		tr_metric_inc(router_series(r, connector)->in);
		o = rt_table_lookup(r->table, ev.connector, ev.channel);
		if (!o || !o->can_send) {
			tr_debug("dropped id=%s channel not routed", ev.id);
			router_count_drop(r, o ? "out_only" : "no_room");
			goto drop;
		}
	} else {
		tr_metric_inc(ack.ok ? r->m_acks_ok : r->m_acks_failed);
		if (!ack.ok)
			tr_info("delivery failed id=%s connector=%s error=%s detail=\"%s\"", ack.id,
			        ack.dest_connector, tr_str(ack.error), tr_str(ack.detail));
	}
	uint64_t seq = replay_seq;
	char token[48];
	if (replay_token) {
		snprintf(token, sizeof(token), "%s", replay_token);
	} else {
		snprintf(token, sizeof(token), "%s.%" PRIu64, r->nonce, r->next_token++);
		if (journal_append(r->journal, kind, token, connector, payload, len, &seq) !=
		    TR_OK) {
			/* Without the journal we cannot promise durability; routing still works. */
			tr_error("journal write failed: routing %s without it", kind_s);
			seq = 0;
		}
	}
	if (r->stopping && !replay_token) {
		/* Arrived while stopping: kept in the journal for the next start. */
		tr_event_cleanup(&ev);
		tr_ack_cleanup(&ack);
		return;
	}
	struct job *j = router_job_new(r, seq, kind, token);
	if (kind == 'a') {
		j->ack = ack;
		j->ack_ep = rt_endpoint_key(ack.dest_connector, ack.dest_channel);
	} else {
		j->ev = ev;
		j->table = r->table;
		rt_table_ref(r->table);
		j->origin = o;
		struct chanq *q = tr_map_get(&r->chanqs, o->ep, strlen(o->ep));
		if (!q) {
			q = tr_xcalloc(1, sizeof(*q));
			q->key = tr_xstrdup(o->ep);
			tr_map_put(&r->chanqs, q->key, strlen(q->key), q);
		}
		if (q->tail)
			q->tail->qnext = j;
		else
			q->head = j;
		q->tail = j;
		j->q = q;
		j->in_queue = true;
	}
	router_send_job(r, j);
	router_flow(r);
	return;
drop:
	tr_event_cleanup(&ev);
	tr_ack_cleanup(&ack);
	if (replay_seq)
		journal_done(r->journal, replay_seq);
}

static void router_on_msg(void *arg, const char *topic, const void *payload, size_t len,
                          bool retained)
{
	(void)retained;
	struct router *r = arg;
	char *owned = NULL;
	const char *kind, *connector;
	if (tr_topic_split(r->cfg->prefix, topic, &owned, &kind, &connector) != TR_OK ||
	    (strcmp(kind, "in") != 0 && strcmp(kind, "ack") != 0) ||
	    !tr_connector_name_valid(connector)) {
		tr_warn("dropped message on unexpected topic (%zu bytes)", len);
		router_count_drop(r, "bad_topic");
		free(owned);
		return;
	}
	router_take(r, kind, connector, payload, len, 0, NULL);
	free(owned);
}

static void router_on_replay(void *arg, uint64_t seq, char kind, const char *token,
                             const char *connector, const char *payload, size_t len)
{
	router_take(arg, kind == 'a' ? "ack" : "in", connector, payload, len, seq, token);
}

static void router_on_acked(void *arg, int mid)
{
	struct router *r = arg;
	char key[16];
	int kl = snprintf(key, sizeof(key), "%d", mid);
	struct job *j = tr_map_del(&r->mids, key, (size_t)kl);
	if (!j)
		return;
	if (--j->outs_pending == 0 && !j->in_queue)
		router_job_finish(r, j);
}

/* ---- rooms -------------------------------------------------------------------------------- */

static void router_publish_channels(struct router *r, const char *connector, const char **chans,
                                    size_t n)
{
	char *payload = NULL;
	if (tr_channels_encode(chans, n, &payload) != TR_OK) {
		tr_error("cannot encode channels list connector=%s", connector);
		return;
	}
	char *topic = tr_topic(r->cfg->prefix, "channels", connector);
	if (tr_bus_publish(r->bus, topic, payload, strlen(payload), true, NULL) != TR_OK)
		tr_error("cannot publish channels list connector=%s", connector);
	free(topic);
	free(payload);
}

static void router_stored_reply(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	struct router *r = arg;
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		r->table_stored = false;
		return;
	}
	free(r->store_text);
	free(r->store_conns);
	r->store_text = r->store_conns = NULL;
	if (reply->type != REDIS_REPLY_STRING)
		return;
	/* Connectors named before but not now get an empty list: they leave their channels. */
	json_t *old = json_loadb(reply->str, reply->len, 0, NULL);
	size_t i, k;
	json_t *v, *w;
	json_array_foreach(old, i, v)
	{
		const char *was = json_string_value(v);
		bool kept = false;
		json_array_foreach(r->cur_conns, k, w) kept = kept || (was && json_equal(v, w));
		if (was && !kept && tr_connector_name_valid(was)) {
			tr_info("connector %s left the rooms file: empty channels list", was);
			router_publish_channels(r, was, NULL, 0);
		}
	}
	json_decref(old);
}

/* Keeps the table in Redis (for trestle-ctl and routers that follow it), and the list of
 * connectors with GETSET, whose answer is the list before this load. */
static void router_store_table(struct router *r)
{
	if (r->table_stored || !r->store_text || !tr_redis_ready(r->redis))
		return;
	char *key = tr_xasprintf("%s:rooms", r->cfg->prefix);
	char *ckey = tr_xasprintf("%s:connectors", r->cfg->prefix);
	const char *a1[] = {"SET", key, r->store_text};
	const char *a2[] = {"GETSET", ckey, r->store_conns};
	if (tr_redis_cmd(r->redis, NULL, NULL, 3, a1, NULL) == TR_OK &&
	    tr_redis_cmd(r->redis, router_stored_reply, r, 3, a2, NULL) == TR_OK)
		r->table_stored = true;
	free(key);
	free(ckey);
}

/* Puts rooms in force (borrowed: the caller cleans them up): the table, the channels lists,
 * and, unless this router follows Redis, the copy kept in Redis. */
static void router_install(struct router *r, const struct tr_rooms *rooms, bool store)
{
	struct rt_table *t = rt_table_new(rooms);
	rt_table_unref(r->table);
	r->table = t;
	tr_metric_set(r->m_rooms, (double)t->n_rooms);
	size_t n_conn = 0;
	const char **conns = tr_rooms_connectors(rooms, &n_conn);
	json_decref(r->cur_conns);
	r->cur_conns = json_array();
	for (size_t i = 0; i < n_conn; i++) {
		size_t n = 0;
		const char **chans = tr_rooms_channels(rooms, conns[i], &n);
		router_publish_channels(r, conns[i], chans, n);
		free(chans);
		json_array_append_new(r->cur_conns, json_string(conns[i]));
	}
	free(conns);
	tr_info("rooms loaded rooms=%u endpoints=%u connectors=%zu", t->n_rooms, t->n_origins,
	        n_conn);
	free(r->store_text);
	free(r->store_conns);
	r->store_text = r->store_conns = NULL;
	r->table_stored = true;
	if (store) {
		struct tr_buf text;
		tr_buf_init(&text, (size_t)TR_ROOMS_MAX_FILE * 4);
		if (tr_rooms_dump(rooms, &text) == TR_OK) {
			r->store_text = tr_buf_take(&text);
			r->store_conns = json_dumps(r->cur_conns, JSON_COMPACT);
			r->table_stored = false;
			router_store_table(r);
		} else {
			tr_error("rooms table too large to keep in Redis");
		}
		tr_buf_cleanup(&text);
	}
}

static bool router_follows_redis(const struct router *r)
{
	return strcmp(r->cfg->rooms_path, "redis:") == 0;
}

/* TRESTLE_ROOMS=redis: this router has no rooms file and follows the table another router
 * keeps in Redis (read when Redis comes up and on SIGHUP). */
static void router_followed_reply(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	struct router *r = arg;
	char err[TR_ERR_LEN] = "no table in Redis yet";
	json_t *j = NULL;
	struct tr_rooms rooms = {0};
	if (reply && reply->type == REDIS_REPLY_STRING)
		j = json_loadb(reply->str, reply->len, 0, NULL);
	if (j && tr_rooms_from_json(j, &rooms, err) == TR_OK) {
		router_install(r, &rooms, false);
		tr_rooms_cleanup(&rooms);
		malloc_trim(0);
		r->have_table = true;
		if (!r->stopping)
			tr_bus_pause(r->bus, r->paused);
	} else if (reply) {
		tr_error("rooms from Redis refused: %s", err);
	}
	json_decref(j);
}

static void router_follow(struct router *r)
{
	char *key = tr_xasprintf("%s:rooms", r->cfg->prefix);
	const char *argv[] = {"GET", key};
	if (tr_redis_cmd(r->redis, router_followed_reply, r, 2, argv, NULL) != TR_OK)
		tr_warn("redis not ready; the table will be read when it is");
	free(key);
}

/* Loads the rooms file; on error logs every FILE:LINE problem and returns TR_E_CONFIG. */
static int router_load_rooms(struct router *r)
{
	if (router_follows_redis(r)) {
		if (!r->table) {
			struct tr_rooms none = {0};
			r->table = rt_table_new(&none);
		} else {
			router_follow(r);
		}
		return TR_OK;
	}
	struct tr_rooms rooms = {0};
	struct tr_buf errs;
	tr_buf_init(&errs, 1024 * 1024);
	int rc = tr_rooms_load(r->cfg->rooms_path, &rooms, &errs);
	if (rc != TR_OK) {
		const char *p = tr_buf_str(&errs);
		while (*p) {
			size_t n = strcspn(p, "\n");
			tr_error("rooms: %.*s", (int)n, p);
			p += n + (p[n] ? 1 : 0);
		}
	} else {
		router_install(r, &rooms, true);
	}
	tr_rooms_cleanup(&rooms);
	tr_buf_cleanup(&errs);
	/* Parsing a large file leaves freed heap behind: give it back to the system. */
	malloc_trim(0);
	return rc;
}

/* ---- redis state and scripts -------------------------------------------------------------- */

static void router_script_loaded(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	char *dst = arg;
	if (!reply || reply->type != REDIS_REPLY_STRING || reply->len != 40) {
		if (reply && reply->type == REDIS_REPLY_ERROR)
			tr_warn("redis SCRIPT LOAD failed: %.*s",
			        (int)(reply->len < 200 ? reply->len : 200), reply->str);
		return;
	}
	memcpy(dst, reply->str, 40);
	dst[40] = '\0';
}

static void router_load_scripts(struct router *r);

static void router_on_script_retry(uv_timer_t *t)
{
	struct router *r = t->data;
	if (tr_redis_ready(r->redis))
		router_load_scripts(r);
}

static void router_scripts_done(struct tr_redis *rd, redisReply *reply, void *arg)
{
	(void)rd;
	struct router *r = arg;
	if (!reply)
		return; /* Redis went away: loaded again when it is back */
	if (!r->route_sha[0] || !r->ack_sha[0]) {
		/* Redis answers LOADING while it reads its data back after a restart: try again. */
		uv_timer_start(&r->script_timer, router_on_script_retry, 500, 0);
		return;
	}
	tr_info("redis scripts loaded; routing");
	if (router_follows_redis(r))
		router_follow(r);
	router_store_table(r);
	router_kick(r);
}

static void router_on_redis(void *arg, bool ready)
{
	struct router *r = arg;
	tr_metric_set(r->m_redis_rc, (double)tr_redis_reconnects(r->redis));
	if (!ready) {
		r->route_sha[0] = r->ack_sha[0] = '\0';
		r->table_stored = false;
		uv_timer_stop(&r->script_timer);
		return;
	}
	router_load_scripts(r);
}

static void router_load_scripts(struct router *r)
{
	const char *a1[] = {"SCRIPT", "LOAD", router_route_lua};
	const char *a2[] = {"SCRIPT", "LOAD", router_ack_lua};
	const char *a3[] = {"PING"};
	/* Replies come in order: by the PING's answer both scripts are loaded. */
	if (tr_redis_cmd(r->redis, router_script_loaded, r->route_sha, 3, a1, NULL) != TR_OK ||
	    tr_redis_cmd(r->redis, router_script_loaded, r->ack_sha, 3, a2, NULL) != TR_OK ||
	    tr_redis_cmd(r->redis, router_scripts_done, r, 1, a3, NULL) != TR_OK)
		tr_warn("redis went away while loading scripts");
}

static void router_on_bus(void *arg, bool connected, bool session_present)
{
	(void)session_present;
	struct router *r = arg;
	(void)connected;
	tr_metric_set(r->m_broker_rc, (double)tr_bus_reconnects(r->bus));
}

/* ---- health and metrics ------------------------------------------------------------------- */

static int router_http(void *arg, const char *method, const char *path, struct tr_buf *body,
                       const char **ctype)
{
	(void)method;
	struct router *r = arg;
	*ctype = "text/plain; charset=utf-8";
	if (strcmp(path, "/healthz") == 0) {
		const char *why = !tr_bus_connected(r->bus)   ? "broker down\n"
		                  : !tr_redis_ready(r->redis) ? "redis down\n"
		                  : !r->route_sha[0] || !r->ack_sha[0]
		                      ? "redis not ready (loading)\n"
		                  : r->stopping ? "stopping\n"
		                                : NULL;
		if (tr_buf_appends(body, why ? why : "ok\n") != TR_OK)
			return 500;
		return why ? 503 : 200;
	}
	if (strcmp(path, "/metrics") == 0) {
		*ctype = "text/plain; version=0.0.4; charset=utf-8";
		tr_metric_set(r->m_depth, (double)r->n_jobs);
		if (tr_metrics_render(r->metrics, body) != TR_OK)
			return 500;
		return 200;
	}
	return 404;
}

/* ---- life cycle --------------------------------------------------------------------------- */

static void router_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void router_redis_closed(void *arg)
{
	struct router *r = arg;
	uv_close((uv_handle_t *)&r->sig_term, router_handle_closed);
	uv_close((uv_handle_t *)&r->sig_int, router_handle_closed);
	uv_close((uv_handle_t *)&r->sig_hup, router_handle_closed);
	uv_close((uv_handle_t *)&r->wait_timer, router_handle_closed);
	uv_close((uv_handle_t *)&r->retry_timer, router_handle_closed);
	uv_close((uv_handle_t *)&r->stop_timer, router_handle_closed);
	uv_close((uv_handle_t *)&r->trim_timer, router_handle_closed);
	uv_close((uv_handle_t *)&r->script_timer, router_handle_closed);
}

static void router_bus_closed(void *arg)
{
	struct router *r = arg;
	tr_redis_close(r->redis, router_redis_closed, r);
}

static void router_shutdown(struct router *r)
{
	static bool done;
	if (done)
		return;
	done = true;
	if (r->n_jobs)
		tr_warn("stopping with %zu events unfinished; they stay in the journal", r->n_jobs);
	uv_timer_stop(&r->stop_timer);
	if (r->httpd)
		tr_httpd_close(r->httpd);
	r->httpd = NULL;
	tr_bus_close(r->bus, 5000, router_bus_closed, r);
}

static void router_maybe_stop(struct router *r)
{
	/* Done when nothing is left that can still make progress. */
	for (struct job *j = r->first; j; j = j->next)
		if (j->state == J_SENT || j->state == J_WAIT || j->state == J_READY ||
		    (j->state == J_NEW && tr_redis_ready(r->redis)) || j->outs_pending)
			return;
	router_shutdown(r);
}

/* After a burst the heap keeps its high-water mark; give it back once the queue is empty. */
static void router_on_trim_timer(uv_timer_t *t)
{
	struct router *r = t->data;
	if (r->n_jobs == 0)
		malloc_trim(0);
}

static void router_on_stop_timer(uv_timer_t *t)
{
	router_shutdown(t->data);
}

static void router_on_signal(uv_signal_t *s, int signum)
{
	struct router *r = s->data;
	if (signum == SIGHUP) {
		tr_info("SIGHUP: reloading %s", r->cfg->rooms_path);
		if (router_load_rooms(r) != TR_OK)
			tr_error("rooms file refused; the previous rooms stay in force");
		return;
	}
	if (r->stopping)
		return;
	tr_info("signal %d: finishing in-flight events, then stopping", signum);
	r->stopping = true;
	uv_timer_start(&r->stop_timer, router_on_stop_timer, ROUTER_STOP_GRACE_MS, 0);
	router_maybe_stop(r);
}

static void router_free(struct router *r)
{
	while (r->first) {
		struct job *j = r->first;
		r->first = j->next;
		router_job_free(j);
	}
	size_t it = 0;
	void *v;
	while (tr_map_next(&r->chanqs, &it, NULL, NULL, &v)) {
		struct chanq *q = v;
		free(q->key);
		free(q);
	}
	tr_map_cleanup(&r->chanqs);
	tr_map_cleanup(&r->mids);
	it = 0;
	while (tr_map_next(&r->series, &it, NULL, NULL, &v))
		free(v);
	tr_map_cleanup(&r->series);
	rt_table_unref(r->table);
	free(r->store_text);
	free(r->store_conns);
	json_decref(r->cur_conns);
	journal_close(r->journal);
	tr_bus_free(r->bus);
	tr_redis_free(r->redis);
	tr_metrics_free(r->metrics);
}

int router_run(const struct router_config *cfg)
{
	struct router rs = {0};
	struct router *r = &rs;
	char err[TR_ERR_LEN];
	int code = TR_EXIT_FAIL;
	r->cfg = cfg;
	r->loop = uv_default_loop();
	tr_map_init(&r->chanqs);
	tr_map_init(&r->mids);
	tr_map_init(&r->series);
	snprintf(r->nonce, sizeof(r->nonce), "%08x%08x", tr_random(), tr_random());
	snprintf(r->retention_s, sizeof(r->retention_s), "%ld", cfg->retention_days * 86400);
	r->metrics = tr_metrics_new();
	static const double lat_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	                                    0.05,   0.1,   0.25,   0.5,   1,    2.5};
	r->m_latency = tr_metrics_histogram(r->metrics, "trestle_router_route_latency_seconds",
	                                    "From receipt to publish of an event.", NULL,
	                                    lat_bounds, TR_ARRAY_LEN(lat_bounds));
	r->m_acks_ok = tr_metrics_counter(r->metrics, "trestle_router_acks_total",
	                                  "Delivery acks from connectors.", "result=\"ok\"");
	r->m_acks_failed =
	    tr_metrics_counter(r->metrics, "trestle_router_acks_total",
	                       "Delivery acks from connectors.", "result=\"failed\"");
	r->m_redis_rc = tr_metrics_counter(r->metrics, "trestle_router_redis_reconnects_total",
	                                   "Reconnects to Redis.", NULL);
	r->m_broker_rc = tr_metrics_counter(r->metrics, "trestle_router_broker_reconnects_total",
	                                    "Reconnects to the broker.", NULL);
	r->m_depth = tr_metrics_gauge(r->metrics, "trestle_router_queue_depth",
	                              "Events received and not yet finished.", NULL);
	r->m_rooms = tr_metrics_gauge(r->metrics, "trestle_router_rooms", "Rooms in force.", NULL);

	/* All connectors, or the partition TRESTLE_ROUTER_CONNECTORS gives this router. */
	char **subs = tr_xcalloc(2 * (cfg->n_connectors ? cfg->n_connectors : 1), sizeof(char *));
	size_t n_subs = 0;
	for (size_t i = 0; i < (cfg->n_connectors ? cfg->n_connectors : 1); i++) {
		const char *c = cfg->n_connectors ? cfg->connectors[i] : "+";
		subs[n_subs++] = tr_topic(cfg->prefix, "in", c);
		subs[n_subs++] = tr_topic(cfg->prefix, "ack", c);
	}
	struct tr_bus_opts bo = {.url = cfg->mqtt_url,
	                         .ca_file = cfg->mqtt_ca_file,
	                         .client_id = cfg->client_id,
	                         .subs = (const char *const *)subs,
	                         .n_subs = n_subs,
	                         .receive_max = 1000,
	                         .on_msg = router_on_msg,
	                         .on_state = router_on_bus,
	                         .on_acked = router_on_acked,
	                         .arg = r};
	r->bus = tr_bus_new(r->loop, &bo, err);
	for (size_t i = 0; i < n_subs; i++)
		free(subs[i]);
	free(subs);
	struct tr_redis_opts ro = {.url = cfg->redis_url, .on_state = router_on_redis, .arg = r};
	if (r->bus)
		r->redis = tr_redis_new(r->loop, &ro, err);
	if (!r->bus || !r->redis) {
		tr_error("config: %s", err);
		code = TR_EXIT_CONFIG;
		goto out;
	}
	if (router_load_rooms(r) != TR_OK) {
		code = TR_EXIT_CONFIG;
		goto out;
	}
	uv_timer_init(r->loop, &r->wait_timer);
	uv_timer_init(r->loop, &r->retry_timer);
	uv_timer_init(r->loop, &r->stop_timer);
	uv_timer_init(r->loop, &r->trim_timer);
	uv_timer_init(r->loop, &r->script_timer);
	r->wait_timer.data = r->retry_timer.data = r->stop_timer.data = r->trim_timer.data = r;
	r->script_timer.data = r;
	uv_timer_start(&r->trim_timer, router_on_trim_timer, 5000, 5000);
	/* Replay before the first message from the broker, so per-channel order holds. */
	r->journal = journal_open(cfg->state_dir, router_on_replay, r, err);
	if (!r->journal) {
		tr_error("%s", err);
		code = TR_EXIT_CONFIG;
		goto out;
	}
	if (cfg->metrics_addr && *cfg->metrics_addr) {
		r->httpd = tr_httpd_start(r->loop, cfg->metrics_addr, router_http, r, err);
		if (!r->httpd) {
			tr_error("TRESTLE_METRICS_ADDR: %s", err);
			code = TR_EXIT_CONFIG;
			goto out;
		}
		tr_info("metrics on http://%s/metrics", cfg->metrics_addr);
	}
	uv_signal_init(r->loop, &r->sig_term);
	uv_signal_init(r->loop, &r->sig_int);
	uv_signal_init(r->loop, &r->sig_hup);
	r->sig_term.data = r->sig_int.data = r->sig_hup.data = r;
	uv_signal_start(&r->sig_term, router_on_signal, SIGTERM);
	uv_signal_start(&r->sig_int, router_on_signal, SIGINT);
	uv_signal_start(&r->sig_hup, router_on_signal, SIGHUP);
	/* A follower reads nothing from the broker before it has its table. */
	if (router_follows_redis(r))
		tr_bus_pause(r->bus, true);
	if (tr_redis_start(r->redis) != TR_OK || tr_bus_start(r->bus) != TR_OK)
		goto out;
	uv_run(r->loop, UV_RUN_DEFAULT);
	code = TR_EXIT_OK;
	tr_info("stopped");
out:
	router_free(r);
	uv_loop_close(r->loop);
	return code;
}
