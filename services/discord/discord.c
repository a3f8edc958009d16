/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-discord: the Gateway v10 life cycle (Hello, jittered heartbeats with an ACK watchdog,
 * Identify or Resume, op 7/9, a bounded history fetch when a session is lost) and deliveries
 * through one bridge-owned webhook per channel, one request at a time so that per-channel order
 * holds while a rate-limit bucket is waited out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>
#include "alloc.h"
#include "backoff.h"
#include "buf.h"
#include "discord.h"
#include "format.h"
#include "log.h"
#include "utf8.h"

#define DC_HOOK_NAME     "Trestle bridge"
#define DC_MAX_TRIES     8
#define DC_POSTED_MAX    4096
#define DC_BACKFILL_PAGE 100

enum dc_step { S_HOOK = 0, S_HOOK_CREATE, S_REPLY, S_SEND, S_THREAD, S_DONE };

struct dc_job {
	struct dc_job *next;
	struct tr_event ev;
	enum dc_step step;
	unsigned tries;
	char **pieces;
	size_t n_pieces, part;
	char *first_id;
	char *reply_name, *reply_excerpt;
	bool thread_tried;
	/* attachments fetched for upload, one per ev.attachments entry (data NULL: a link) */
	struct dc_file {
		char *data, *mime;
		size_t len;
	} * files;
	size_t fetch_i, fetched_bytes, n_uploads;
	bool fetched;
};

struct dc_cfg {
	char *token, *api_url, *gateway_url;
	long backfill_max;
};

struct discord {
	struct dc_cfg cfg;
	struct tr_conn *c;
	struct tr_http *http;
	struct tr_ws_ctx *wsx;
	struct tr_ws *ws;
	uv_timer_t hb_timer, job_timer;
	bool timers;
	/* gateway */
	char *gateway_base;
	char *session_id, *resume_url;
	int64_t seq;
	uint64_t hb_interval;
	bool ack_pending, ready, resuming, need_backfill;
	unsigned early_closes;
	char *self_id, *self_name;
	struct tr_http_call *gw_call;
	/* caches: keys strings, values tr_xstrdup'd strings */
	struct tr_map threads;  /* thread id -> parent channel id */
	struct tr_map names;    /* "@id", "&id", "#id" -> name */
	struct tr_map guild_of; /* channel id -> guild id */
	struct tr_map hooks;    /* channel id -> "id/token" */
	struct tr_map hook_ids; /* webhook id -> "1" */
	struct tr_map posted;   /* message ids we posted -> "1" (bounded) */
	struct tr_map cursors;  /* channel id -> last message id seen */
	bool cursors_dirty;
	struct dc_rl rl;
	/* deliveries */
	struct dc_job *jobs, **jobs_tail;
	struct tr_http_call *call;
	char call_route[96], call_major[32]; /* the bucket of the call in flight */
	/* history fetch after a lost session */
	char **bf_channels;
	size_t bf_n, bf_i;
	struct tr_http_call *bf_call;
	unsigned long long counter;
};

static struct discord *dc_of(struct tr_conn *c)
{
	return tr_conn_state(c);
}

static void dc_map_set(struct tr_map *map, const char *key, const char *val)
{
	free(tr_map_put(map, key, strlen(key), tr_xstrdup(val)));
}

static const char *dc_map_get(const struct tr_map *map, const char *key)
{
	return key ? tr_map_get(map, key, strlen(key)) : NULL;
}

static void dc_map_free(struct tr_map *map)
{
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(map, &i, &k, &kl, &v);)
		free(v);
	tr_map_cleanup(map);
	tr_map_init(map);
}

static int64_t dc_now(struct discord *m)
{
	return (int64_t)uv_now(tr_conn_loop(m->c));
}

/* ---------------------------------------------------------------- settings */

static int discord_configure(struct tr_conn *c, struct tr_env *env)
{
	struct discord *m = dc_of(c);
	m->c = c;
	m->cfg.token = tr_env_required(env, "DISCORD_BOT_TOKEN");
	m->cfg.api_url = tr_env_str(env, "DISCORD_API_URL", "https://discord.com/api/v10");
	m->cfg.gateway_url = tr_env_str(env, "DISCORD_GATEWAY_URL", NULL);
	m->cfg.backfill_max = tr_env_int(env, "DISCORD_BACKFILL_MAX", 100, 0, 1000);
	if (m->cfg.api_url) {
		size_t n = strlen(m->cfg.api_url);
		while (n && m->cfg.api_url[n - 1] == '/')
			m->cfg.api_url[--n] = '\0';
	}
	tr_map_init(&m->threads);
	tr_map_init(&m->names);
	tr_map_init(&m->guild_of);
	tr_map_init(&m->hooks);
	tr_map_init(&m->hook_ids);
	tr_map_init(&m->posted);
	tr_map_init(&m->cursors);
	dc_rl_init(&m->rl);
	m->jobs_tail = &m->jobs;
	return TR_OK;
}

/* ---------------------------------------------------------------- durable state */

static void dc_state_load(struct discord *m, const char *name, struct tr_map *map)
{
	char *data = NULL;
	size_t len = 0;
	if (tr_conn_state_read(m->c, name, &data, &len) != TR_OK)
		return;
	json_t *j = json_loadb(data, len, 0, NULL);
	free(data);
	const char *k;
	json_t *v;
	json_object_foreach(j, k, v)
	{
		if (json_is_string(v))
			dc_map_set(map, k, json_string_value(v));
	}
	json_decref(j);
}

static void dc_state_save(struct discord *m, const char *name, const struct tr_map *map)
{
	json_t *j = json_object();
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(map, &i, &k, &kl, &v);)
		json_object_set_new(j, k, json_string(v));
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s || tr_conn_state_write(m->c, name, s, strlen(s)) != TR_OK)
		tr_warn("cannot write the %s state file", name);
	free(s);
}

static void dc_hooks_loaded(struct discord *m)
{
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&m->hooks, &i, &k, &kl, &v);) {
		char *id = tr_xstrndup(v, strcspn(v, "/"));
		dc_map_set(&m->hook_ids, id, "1");
		free(id);
	}
}

/* The cursors move only once the events they cover are safe at the broker. */
static void dc_cursors_published(struct tr_conn *c, void *arg)
{
	struct discord *m = arg;
	(void)c;
	if (!m->cursors_dirty)
		return;
	m->cursors_dirty = false;
	dc_state_save(m, "cursors", &m->cursors);
}

static void dc_cursor(struct discord *m, const char *channel, const char *msgid)
{
	const char *old = dc_map_get(&m->cursors, channel);
	if (old && dc_snowflake_cmp(old, msgid) >= 0)
		return;
	dc_map_set(&m->cursors, channel, msgid);
	if (!m->cursors_dirty) {
		m->cursors_dirty = true;
		tr_conn_when_published(m->c, dc_cursors_published, m);
	}
}

/* ---------------------------------------------------------------- HTTP */

#define DC_USER_AGENT "User-Agent: DiscordBot (https://trestle.coop, 1) trestle"

/* A request with a raw body (may be NULL) of Content-Type ctype. */
static int dc_request_raw(struct discord *m, const char *method, const char *url, const char *data,
                          size_t len, const char *ctype, tr_http_done_fn *done, void *arg,
                          struct tr_http_call **call)
{
	char *h_auth = tr_xasprintf("Authorization: Bot %s", m->cfg.token);
	char *h_type = tr_xasprintf("Content-Type: %s", ctype);
	const char *headers[3] = {h_auth, h_type, DC_USER_AGENT};
	struct tr_http_req req = {.method = method,
	                          .url = url,
	                          .headers = headers,
	                          .n_headers = 3,
	                          .body = data,
	                          .body_len = data ? len : 0,
	                          .timeout_ms = 20000};
	int rc = tr_http_request(m->http, &req, done, arg, call);
	free(h_auth);
	free(h_type);
	return rc;
}

static int dc_request(struct discord *m, const char *method, const char *url, json_t *body,
                      tr_http_done_fn *done, void *arg, struct tr_http_call **call)
{
	char *data = NULL;
	if (body) {
		data = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!data)
			return TR_E_NOMEM;
	}
	int rc = dc_request_raw(m, method, url, data, data ? strlen(data) : 0, "application/json",
	                        done, arg, call);
	free(data);
	return rc;
}

static json_t *dc_json(const struct tr_http_resp *r)
{
	return r->len ? json_loadb(r->body, r->len, 0, NULL) : NULL;
}

static int dc_api_code(const struct tr_http_resp *r)
{
	json_t *j = dc_json(r);
	json_t *code = json_object_get(j, "code");
	int v = json_is_integer(code) ? (int)json_integer_value(code) : 0;
	json_decref(j);
	return v;
}

/* ---------------------------------------------------------------- gateway */

static void dc_gw_open(struct discord *m, const char *base);

static void dc_gw_send(struct discord *m, json_t *frame)
{
	char *s = json_dumps(frame, JSON_COMPACT);
	json_decref(frame);
	if (s && m->ws && tr_ws_send(m->ws, s, strlen(s)) != TR_OK)
		tr_warn("gateway: cannot queue a frame");
	free(s);
}

static void dc_gw_forget_session(struct discord *m)
{
	free(m->session_id);
	free(m->resume_url);
	m->session_id = m->resume_url = NULL;
	m->seq = 0;
	m->need_backfill = true;
}

/* Ends the gateway connection and lets the core reconnect (resuming when a session is kept). */
static void dc_gw_lost(struct discord *m, int err, const char *detail)
{
	if (m->ws) {
		tr_ws_close(m->ws);
		m->ws = NULL;
	}
	tr_conn_lost(m->c, err, detail);
}

static void dc_heartbeat(uv_timer_t *t)
{
	struct discord *m = t->data;
	if (m->ack_pending) {
		tr_warn("gateway: no heartbeat ACK, the connection is a zombie; reconnecting");
		dc_gw_lost(m, TR_E_TIMEOUT, "no heartbeat ACK (zombie connection)");
		return;
	}
	json_t *f =
	    json_pack("{s:i, s:o}", "op", 1, "d", m->seq ? json_integer(m->seq) : json_null());
	dc_gw_send(m, f);
	m->ack_pending = true;
	uv_timer_start(&m->hb_timer, dc_heartbeat, m->hb_interval, 0);
}

static void dc_identify(struct discord *m)
{
	json_t *f = json_pack("{s:i, s:{s:s, s:i, s:{s:s, s:s, s:s}}}", "op", 2, "d", "token",
	                      m->cfg.token, "intents", DC_INTENTS, "properties", "os", "linux",
	                      "browser", "trestle", "device", "trestle");
	tr_debug("gateway: identify");
	dc_gw_send(m, f);
}

static void dc_resume(struct discord *m)
{
	json_t *f = json_pack("{s:i, s:{s:s, s:s, s:I}}", "op", 6, "d", "token", m->cfg.token,
	                      "session_id", m->session_id, "seq", (json_int_t)m->seq);
	tr_debug("gateway: resume at seq %lld", (long long)m->seq);
	dc_gw_send(m, f);
}

static bool dc_own_webhook(void *arg, const char *id)
{
	struct discord *m = arg;
	return dc_map_get(&m->hook_ids, id) != NULL;
}

static const char *dc_thread_parent(void *arg, const char *channel)
{
	struct discord *m = arg;
	return dc_map_get(&m->threads, channel);
}

static const char *dc_name(void *arg, char kind, const char *id)
{
	struct discord *m = arg;
	char key[40];
	snprintf(key, sizeof(key), "%c%s", kind, id);
	return dc_map_get(&m->names, key);
}

static struct dc_map_ctx dc_ctx(struct discord *m)
{
	return (struct dc_map_ctx){.connector = tr_conn_name(m->c),
	                           .self_id = m->self_id,
	                           .own_webhook = dc_own_webhook,
	                           .thread_parent = dc_thread_parent,
	                           .name = dc_name,
	                           .arg = m};
}

static bool dc_bridged(struct discord *m, const char *channel)
{
	size_t n = 0;
	const char *const *ids = tr_conn_channels(m->c, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], channel) == 0)
			return true;
	return false;
}

static void dc_publish(struct discord *m, struct tr_event *ev)
{
	if (dc_bridged(m, ev->channel) && tr_conn_publish(m->c, ev) != TR_OK)
		tr_warn("event %s not published", tr_str(ev->id));
	tr_event_cleanup(ev);
}

static void dc_learn_channel(struct discord *m, const json_t *ch, const char *guild)
{
	const char *id = json_string_value(json_object_get(ch, "id"));
	const char *name = json_string_value(json_object_get(ch, "name"));
	const char *parent = json_string_value(json_object_get(ch, "parent_id"));
	json_int_t type = json_integer_value(json_object_get(ch, "type"));
	if (!id)
		return;
	char key[40];
	snprintf(key, sizeof(key), "#%s", id);
	if (name)
		dc_map_set(&m->names, key, name);
	if (guild)
		dc_map_set(&m->guild_of, id, guild);
	if ((type == 10 || type == 11 || type == 12) && parent)
		dc_map_set(&m->threads, id, parent);
}

static void dc_on_guild(struct discord *m, const json_t *g)
{
	const char *gid = json_string_value(json_object_get(g, "id"));
	size_t i;
	const json_t *x;
	json_array_foreach(json_object_get(g, "channels"), i, x) dc_learn_channel(m, x, gid);
	json_array_foreach(json_object_get(g, "threads"), i, x) dc_learn_channel(m, x, gid);
	json_array_foreach(json_object_get(g, "roles"), i, x)
	{
		const char *id = json_string_value(json_object_get(x, "id"));
		const char *name = json_string_value(json_object_get(x, "name"));
		if (id && name) {
			char key[40];
			snprintf(key, sizeof(key), "&%s", id);
			dc_map_set(&m->names, key, name);
		}
	}
}

static void dc_on_message(struct discord *m, const json_t *d, bool update)
{
	const char *cid = json_string_value(json_object_get(d, "channel_id"));
	const char *mid = json_string_value(json_object_get(d, "id"));
	if (!update && cid && mid)
		dc_cursor(m, cid, mid);
	struct dc_map_ctx ctx = dc_ctx(m);
	struct tr_event ev;
	int rc = dc_map_message(d, update, &ctx, &ev);
	if (rc == TR_OK)
		dc_publish(m, &ev);
	else if (rc != TR_E_NOTFOUND)
		tr_warn("malformed message %s ignored", tr_str(mid));
}

static void dc_backfill_next(struct discord *m);

static void dc_backfill_start(struct discord *m)
{
	for (size_t i = 0; i < m->bf_n; i++)
		free(m->bf_channels[i]);
	free(m->bf_channels);
	m->bf_channels = NULL;
	m->bf_n = m->bf_i = 0;
	if (m->cfg.backfill_max <= 0)
		return;
	m->bf_channels = tr_xcalloc(m->cursors.len + 1, sizeof(char *));
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&m->cursors, &i, &k, &kl, &v);)
		m->bf_channels[m->bf_n++] = tr_xstrdup(k);
	tr_info("fetching missed messages of %zu channels", m->bf_n);
	dc_backfill_next(m);
}

static void dc_backfill_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->bf_call = NULL;
	const char *cid = m->bf_channels[m->bf_i];
	json_t *arr = r->err == TR_OK && r->status == 200 ? dc_json(r) : NULL;
	if (!json_is_array(arr))
		tr_warn("history of channel %s not fetched: %ld %s", cid, r->status,
		        tr_strerror(r->err));
	/* Newest first: published oldest first, as they were posted. */
	for (size_t i = json_array_size(arr); i-- > 0;) {
		json_t *msg = json_array_get(arr, i);
		json_object_set_new(msg, "channel_id", json_string(cid));
		dc_on_message(m, msg, false);
	}
	json_decref(arr);
	m->bf_i++;
	dc_backfill_next(m);
}

static void dc_backfill_next(struct discord *m)
{
	if (!m->ready || m->bf_i >= m->bf_n)
		return;
	const char *cid = m->bf_channels[m->bf_i];
	const char *after = dc_map_get(&m->cursors, cid);
	long limit =
	    m->cfg.backfill_max < DC_BACKFILL_PAGE ? m->cfg.backfill_max : DC_BACKFILL_PAGE;
	char *url = tr_xasprintf("%s/channels/%s/messages?after=%s&limit=%ld", m->cfg.api_url, cid,
	                         after ? after : "0", limit);
	if (dc_request(m, "GET", url, NULL, dc_backfill_done, m, &m->bf_call) != TR_OK) {
		m->bf_i++;
		free(url);
		dc_backfill_next(m);
		return;
	}
	free(url);
}

static void dc_run(struct discord *m);

static void dc_on_dispatch(struct discord *m, const char *t, json_t *d)
{
	struct dc_map_ctx ctx = dc_ctx(m);
	struct tr_event ev;
	if (strcmp(t, "READY") == 0) {
		const json_t *u = json_object_get(d, "user");
		const char *sid = json_string_value(json_object_get(d, "session_id"));
		const char *rurl = json_string_value(json_object_get(d, "resume_gateway_url"));
		const char *uid = json_string_value(json_object_get(u, "id"));
		const char *un = json_string_value(json_object_get(u, "username"));
		if (!sid || !uid) {
			dc_gw_lost(m, TR_E_PROTO, "READY without session_id or user");
			return;
		}
		free(m->session_id);
		free(m->resume_url);
		free(m->self_id);
		free(m->self_name);
		m->session_id = tr_xstrdup(sid);
		m->resume_url = rurl ? tr_xstrdup(rurl) : NULL;
		m->self_id = tr_xstrdup(uid);
		m->self_name = tr_xstrdup(un ? un : uid);
		m->ready = true;
		m->early_closes = 0;
		char *detail = tr_xasprintf("connected as @%s", m->self_name);
		tr_conn_online(m->c, detail);
		free(detail);
		if (m->need_backfill) {
			m->need_backfill = false;
			dc_backfill_start(m);
		}
		dc_run(m);
	} else if (strcmp(t, "RESUMED") == 0) {
		m->ready = true;
		m->early_closes = 0;
		char *detail = tr_xasprintf("connected as @%s (resumed)", tr_str(m->self_name));
		tr_conn_online(m->c, detail);
		free(detail);
		dc_run(m);
	} else if (strcmp(t, "GUILD_CREATE") == 0) {
		dc_on_guild(m, d);
	} else if (strcmp(t, "CHANNEL_CREATE") == 0 || strcmp(t, "CHANNEL_UPDATE") == 0 ||
	           strcmp(t, "THREAD_CREATE") == 0 || strcmp(t, "THREAD_UPDATE") == 0) {
		dc_learn_channel(m, d, json_string_value(json_object_get(d, "guild_id")));
	} else if (strcmp(t, "MESSAGE_CREATE") == 0 || strcmp(t, "MESSAGE_UPDATE") == 0) {
		dc_on_message(m, d, t[8] == 'U');
	} else if (strcmp(t, "MESSAGE_DELETE") == 0) {
		const char *mid = json_string_value(json_object_get(d, "id"));
		/* Our own deletions (a bridged delete) must not come back. */
		if (mid && dc_map_get(&m->posted, mid))
			return;
		if (dc_map_delete(d, &ctx, &ev) == TR_OK)
			dc_publish(m, &ev);
	} else if (strcmp(t, "MESSAGE_REACTION_ADD") == 0 ||
	           strcmp(t, "MESSAGE_REACTION_REMOVE") == 0) {
		char tag[64];
		snprintf(tag, sizeof(tag), "%.8s-%lld", tr_str(m->session_id), (long long)m->seq);
		int rc = dc_map_reaction(d, t[17] == 'R', tag, &ctx, &ev);
		if (rc == TR_OK)
			dc_publish(m, &ev);
	}
}

static void dc_ws_message(void *arg, struct tr_ws *ws, const char *msg, size_t len, bool binary)
{
	struct discord *m = arg;
	(void)ws;
	if (binary)
		return;
	json_t *f = json_loadb(msg, len, 0, NULL);
	json_t *op = json_object_get(f, "op");
	if (!json_is_integer(op)) {
		json_decref(f);
		return;
	}
	json_t *d = json_object_get(f, "d");
	switch (json_integer_value(op)) {
	case 0: {
		json_t *s = json_object_get(f, "s");
		if (json_is_integer(s) && json_integer_value(s) > m->seq)
			m->seq = json_integer_value(s);
		const char *t = json_string_value(json_object_get(f, "t"));
		if (t)
			dc_on_dispatch(m, t, d);
		break;
	}
	case 1: /* the server asks for a heartbeat now */
		dc_gw_send(m, json_pack("{s:i, s:o}", "op", 1, "d",
		                        m->seq ? json_integer(m->seq) : json_null()));
		break;
	case 7:
		tr_info("gateway: op 7 reconnect requested, resuming");
		dc_gw_lost(m, TR_E_AGAIN, "reconnect requested by Discord (op 7)");
		break;
	case 9:
		if (!json_is_true(d)) {
			tr_info("gateway: invalid session, identifying afresh");
			dc_gw_forget_session(m);
		}
		dc_gw_lost(m, TR_E_AGAIN, "invalid session (op 9)");
		break;
	case 10: {
		json_int_t iv = json_integer_value(json_object_get(d, "heartbeat_interval"));
		if (iv < 100 || iv > 600000) {
			dc_gw_lost(m, TR_E_PROTO, "Hello without a usable heartbeat_interval");
			break;
		}
		m->hb_interval = (uint64_t)iv;
		m->ack_pending = false;
		uv_timer_start(&m->hb_timer, dc_heartbeat,
		               dc_first_heartbeat_ms(m->hb_interval, tr_random()), 0);
		if (m->session_id && m->resuming)
			dc_resume(m);
		else
			dc_identify(m);
		break;
	}
	case 11:
		m->ack_pending = false;
		break;
	default:
		break;
	}
	json_decref(f);
}

static void dc_ws_close(void *arg, struct tr_ws *ws, int err, const char *detail)
{
	struct discord *m = arg;
	(void)ws;
	m->ws = NULL;
	/* ws.h does not report the close code, so 4004/4014 are recognised before connecting
	 * (REST preflight). A session that keeps closing before READY is dropped. */
	if (!m->ready && ++m->early_closes >= 3 && m->session_id) {
		tr_warn("gateway closes before READY: starting a new session");
		dc_gw_forget_session(m);
	}
	char *words = tr_xasprintf("gateway connection lost: %s", tr_str(detail));
	tr_conn_lost(m->c, err == TR_OK ? TR_E_CLOSED : err, words);
	free(words);
}

static void dc_gw_open(struct discord *m, const char *base)
{
	char *url = dc_gateway_url(base);
	struct tr_ws_opts o = {.url = url,
	                       .idle_ping_s = 60,
	                       .idle_hangup_s = 120,
	                       .max_message = 8 * 1024 * 1024,
	                       .on_message = dc_ws_message,
	                       .on_close = dc_ws_close,
	                       .arg = m};
	m->ready = false;
	m->resuming = m->session_id && base == m->resume_url;
	tr_debug("gateway: opening (%s)", m->resuming ? "resume" : "identify");
	int rc = tr_ws_open(m->wsx, &o, &m->ws);
	free(url);
	if (rc != TR_OK)
		tr_conn_lost(m->c, rc, "cannot open the gateway connection");
}

static void dc_gateway_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->gw_call = NULL;
	json_t *j = r->err == TR_OK && r->status == 200 ? dc_json(r) : NULL;
	const char *url = json_string_value(json_object_get(j, "url"));
	if (!url) {
		json_decref(j);
		tr_conn_lost(m->c, r->err ? r->err : TR_E_PROTO, "GET /gateway/bot failed");
		return;
	}
	free(m->gateway_base);
	m->gateway_base = tr_xstrdup(url);
	json_decref(j);
	dc_gw_open(m, m->gateway_base);
}

static void dc_app_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->gw_call = NULL;
	json_t *j = r->err == TR_OK && r->status == 200 ? dc_json(r) : NULL;
	json_t *flags = json_object_get(j, "flags");
	if (json_is_integer(flags) &&
	    !(json_integer_value(flags) & (DC_APP_CONTENT | DC_APP_CONTENT_LIMITED))) {
		bool fatal;
		const char *w = dc_close_words(4014, &fatal);
		tr_error("%s", w);
		json_decref(j);
		tr_conn_lost(m->c, TR_E_CONFIG, w);
		return;
	}
	json_decref(j);
	if (m->cfg.gateway_url) {
		dc_gw_open(m, m->cfg.gateway_url);
		return;
	}
	char *url = tr_xasprintf("%s/gateway/bot", m->cfg.api_url);
	int rc = dc_request(m, "GET", url, NULL, dc_gateway_done, m, &m->gw_call);
	free(url);
	if (rc != TR_OK)
		tr_conn_lost(m->c, rc, "GET /gateway/bot failed");
}

static void dc_me_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->gw_call = NULL;
	if (r->status == 401) {
		bool fatal;
		const char *w = dc_close_words(4004, &fatal);
		tr_error("%s", w);
		tr_conn_lost(m->c, TR_E_AUTH, w);
		return;
	}
	if (r->err != TR_OK || r->status != 200) {
		tr_conn_lost(m->c, r->err ? r->err : TR_E_IO, "GET /users/@me failed");
		return;
	}
	char *url = tr_xasprintf("%s/applications/@me", m->cfg.api_url);
	int rc = dc_request(m, "GET", url, NULL, dc_app_done, m, &m->gw_call);
	free(url);
	if (rc != TR_OK)
		tr_conn_lost(m->c, rc, "GET /applications/@me failed");
}

static int discord_connect(struct tr_conn *c)
{
	struct discord *m = dc_of(c);
	if (!m->timers) {
		uv_timer_init(tr_conn_loop(c), &m->hb_timer);
		uv_timer_init(tr_conn_loop(c), &m->job_timer);
		m->hb_timer.data = m->job_timer.data = m;
		m->timers = true;
		dc_state_load(m, "webhooks", &m->hooks);
		dc_hooks_loaded(m);
		dc_state_load(m, "cursors", &m->cursors);
		/* A restart with cursors fetches what was posted meanwhile. */
		m->need_backfill = m->cursors.len > 0;
	}
	if (!m->http)
		m->http = tr_http_new(tr_conn_loop(c));
	if (!m->wsx) {
		char err[TR_ERR_LEN];
		m->wsx = tr_ws_ctx_new(tr_conn_loop(c), 15, err);
		if (!m->wsx) {
			tr_error("%s", err);
			return TR_E_IO;
		}
	}
	if (m->session_id && m->resume_url) {
		dc_gw_open(m, m->resume_url);
		return TR_OK;
	}
	char *url = tr_xasprintf("%s/users/@me", m->cfg.api_url);
	int rc = dc_request(m, "GET", url, NULL, dc_me_done, m, &m->gw_call);
	free(url);
	return rc;
}

/* ---------------------------------------------------------------- deliveries */

static void dc_job_free(struct dc_job *j)
{
	if (!j)
		return;
	/* Before the event: its cleanup zeroes n_attachments. */
	for (size_t i = 0; j->files && i < j->ev.n_attachments; i++) {
		free(j->files[i].data);
		free(j->files[i].mime);
	}
	free(j->files);
	tr_event_cleanup(&j->ev);
	tr_format_pieces_free(j->pieces);
	free(j->first_id);
	free(j->reply_name);
	free(j->reply_excerpt);
	free(j);
}

static void dc_finish(struct discord *m, int err, const char *msgid_or_detail)
{
	struct dc_job *j = m->jobs;
	if (!j)
		return;
	m->jobs = j->next;
	if (!m->jobs)
		m->jobs_tail = &m->jobs;
	tr_conn_ack(m->c, &j->ev, err, msgid_or_detail);
	dc_job_free(j);
	dc_run(m);
}

static void dc_job_timer(uv_timer_t *t)
{
	dc_run(t->data);
}

/* The channel a message lives in: the thread, unless it is the thread's own starter message. */
static const char *dc_msg_channel(const struct tr_event *ev, const char *msgid)
{
	const char *th = ev->dest.thread;
	return th && (!msgid || strcmp(th, msgid) != 0) ? th : ev->dest.channel;
}

static void dc_step_done(void *arg, const struct tr_http_resp *r);
static char *dc_hook_url(struct discord *m, const char *channel, const char *tail,
                         const char *thread, bool wait);

/* Sends the head job's next request unless its bucket must be waited out first; takes url
 * and body, or (body NULL) a raw body mp of Content-Type ctype. */
static void dc_call_raw(struct discord *m, const char *method, const char *route, const char *major,
                        char *url, json_t *body, struct tr_buf *mp, const char *ctype)
{
	int64_t wait = dc_rl_wait(&m->rl, route, major, dc_now(m));
	if (wait > 0) {
		tr_debug("rate limit: waiting %lld ms for %s", (long long)wait, route);
		free(url);
		json_decref(body);
		if (mp)
			tr_buf_cleanup(mp);
		uv_timer_start(&m->job_timer, dc_job_timer, (uint64_t)wait, 0);
		return;
	}
	snprintf(m->call_route, sizeof(m->call_route), "%s", route);
	snprintf(m->call_major, sizeof(m->call_major), "%s", major);
	int rc;
	if (mp) {
		rc = dc_request_raw(m, method, url, mp->data, mp->len, ctype, dc_step_done, m,
		                    &m->call);
		tr_buf_cleanup(mp);
	} else {
		rc = dc_request(m, method, url, body, dc_step_done, m, &m->call);
	}
	free(url);
	if (rc != TR_OK) {
		m->call = NULL;
		dc_finish(m, rc, "request not started");
	}
}

static void dc_call(struct discord *m, const char *method, const char *route, const char *major,
                    char *url, json_t *body)
{
	dc_call_raw(m, method, route, major, url, body, NULL, NULL);
}

static void dc_fetch_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->call = NULL;
	struct dc_job *j = m->jobs;
	if (!j || !j->files || j->fetch_i >= j->ev.n_attachments)
		return;
	const struct tr_attachment *a = &j->ev.attachments[j->fetch_i];
	struct dc_file *f = &j->files[j->fetch_i];
	j->fetch_i++;
	if (r->err != TR_OK || r->status < 200 || r->status > 299 || r->len == 0 ||
	    j->fetched_bytes + r->len > DC_UPLOAD_MAX_TOTAL) {
		tr_info("attachment %s not fetched (%s, HTTP %ld): sent as a link",
		        a->name ? a->name : "", r->err != TR_OK ? tr_strerror(r->err) : "ok",
		        r->status);
		dc_run(m);
		return;
	}
	f->data = tr_xmalloc(r->len);
	memcpy(f->data, r->body, r->len);
	f->len = r->len;
	const char *ct = r->call ? tr_http_header(r->call, "Content-Type") : NULL;
	if (!a->mime && ct)
		f->mime = tr_xstrndup(ct, strcspn(ct, "; "));
	j->fetched_bytes += r->len;
	j->n_uploads++;
	dc_run(m);
}

/* Fetches the head job's next uploadable attachment; marks the job fetched after the last. */
static void dc_fetch_next(struct discord *m, struct dc_job *j)
{
	const struct tr_event *ev = &j->ev;
	if (!j->files)
		j->files = tr_xcalloc(ev->n_attachments, sizeof(*j->files));
	for (; j->fetch_i < ev->n_attachments; j->fetch_i++) {
		const struct tr_attachment *a = &ev->attachments[j->fetch_i];
		if (j->n_uploads >= DC_UPLOAD_MAX_FILES || a->size > DC_UPLOAD_MAX_FILE ||
		    (strncasecmp(a->url, "https://", 8) != 0 &&
		     strncasecmp(a->url, "http://", 7) != 0))
			continue;
		/* No Authorization header: the URL is someone else's. */
		const char *headers[1] = {DC_USER_AGENT};
		struct tr_http_req req = {.method = "GET",
		                          .url = a->url,
		                          .headers = headers,
		                          .n_headers = 1,
		                          .timeout_ms = DC_UPLOAD_TIMEOUT_MS,
		                          .max_response = DC_UPLOAD_MAX_FILE};
		if (tr_http_request(m->http, &req, dc_fetch_done, m, &m->call) == TR_OK)
			return;
		m->call = NULL;
	}
	j->fetched = true;
	dc_run(m);
}

/* Executes the webhook with the piece as content and the fetched files as uploads. */
static void dc_execute_upload(struct discord *m, struct dc_job *j, const char *major,
                              const char *piece)
{
	const struct tr_event *ev = &j->ev;
	struct dc_upload *up = tr_xcalloc(j->n_uploads, sizeof(*up));
	char **names = tr_xcalloc(j->n_uploads, sizeof(char *));
	size_t n = 0;
	for (size_t i = 0; i < ev->n_attachments && n < j->n_uploads; i++) {
		if (!j->files[i].data)
			continue;
		const struct tr_attachment *a = &ev->attachments[i];
		names[n] = dc_upload_name(a->name, a->url);
		up[n] = (struct dc_upload){.name = names[n],
		                           .mime = a->mime ? a->mime : j->files[i].mime,
		                           .data = j->files[i].data,
		                           .len = j->files[i].len};
		n++;
	}
	struct tr_buf mp;
	tr_buf_init(&mp, DC_UPLOAD_MAX_TOTAL + 64 * 1024);
	char boundary[48];
	int rc = TR_E_INVAL;
	/* A boundary found inside a file is vanishingly unlikely: try another a few times. */
	for (int tries = 0; tries < 4 && rc == TR_E_INVAL; tries++) {
		static const char hex[] = "0123456789abcdef";
		memcpy(boundary, "trestle-", 8);
		for (size_t i = 0; i < 32; i += 8) {
			uint32_t r = tr_random();
			for (size_t k = 0; k < 8; k++)
				boundary[8 + i + k] = hex[(r >> (4 * k)) & 0xf];
		}
		boundary[40] = '\0';
		tr_buf_reset(&mp);
		json_t *payload = dc_webhook_body(piece, ev, true);
		rc = dc_multipart(payload, up, n, boundary, &mp);
		json_decref(payload);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(up);
	if (rc != TR_OK) {
		tr_buf_cleanup(&mp);
		dc_finish(m, rc, "upload not built");
		return;
	}
	char *ctype = tr_xasprintf("multipart/form-data; boundary=%s", boundary);
	dc_call_raw(m, "POST", "POST /webhooks/{id}/{token}", major,
	            dc_hook_url(m, ev->dest.channel, "", ev->dest.thread, true), NULL, &mp, ctype);
	free(ctype);
}

static char *dc_hook_url(struct discord *m, const char *channel, const char *tail,
                         const char *thread, bool wait)
{
	const char *h = dc_map_get(&m->hooks, channel);
	return tr_xasprintf("%s/webhooks/%s%s%s%s%s%s", m->cfg.api_url, h, tail,
	                    wait ? "?wait=true" : "", thread ? (wait ? "&" : "?") : "",
	                    thread ? "thread_id=" : "", thread ? thread : "");
}

static size_t dc_chars(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void dc_run(struct discord *m)
{
	struct dc_job *j = m->jobs;
	if (!j || m->call || !m->ready || uv_is_active((uv_handle_t *)&m->job_timer))
		return;
	const struct tr_event *ev = &j->ev;
	const char *ch = ev->dest.channel;
	if (ev->type != TR_EV_MESSAGE && ev->type != TR_EV_EDIT && ev->type != TR_EV_DELETE &&
	    ev->type != TR_EV_REACTION) {
		dc_finish(m, TR_OK, NULL); /* join/leave/topic: nothing to show */
		return;
	}
	if (ev->type == TR_EV_REACTION) {
		if (!ev->dest.target || !ev->reaction) {
			dc_finish(m, TR_E_NOTFOUND, "reaction target unknown here");
			return;
		}
		if (ev->reaction[0] == ':') {
			dc_finish(m, TR_E_INVAL, "custom emoji cannot be bridged");
			return;
		}
		char *e = tr_http_escape(ev->reaction);
		const char *mc = dc_msg_channel(ev, ev->dest.target);
		char *url = tr_xasprintf("%s/channels/%s/messages/%s/reactions/%s/@me",
		                         m->cfg.api_url, mc, ev->dest.target, e);
		free(e);
		dc_call(m, ev->removed ? "DELETE" : "PUT", "PUT /channels/{id}/messages/reactions",
		        mc, url, NULL);
		return;
	}
	if ((ev->type == TR_EV_EDIT || ev->type == TR_EV_DELETE) && !ev->dest.target) {
		dc_finish(m, TR_E_NOTFOUND, "target unknown here");
		return;
	}
	if (j->step == S_HOOK && dc_map_get(&m->hooks, ch))
		j->step = S_REPLY;
	switch (j->step) {
	case S_HOOK:
		dc_call(m, "GET", "GET /channels/{id}/webhooks", ch,
		        tr_xasprintf("%s/channels/%s/webhooks", m->cfg.api_url, ch), NULL);
		return;
	case S_HOOK_CREATE:
		dc_call(m, "POST", "POST /channels/{id}/webhooks", ch,
		        tr_xasprintf("%s/channels/%s/webhooks", m->cfg.api_url, ch),
		        json_pack("{s:s}", "name", DC_HOOK_NAME));
		return;
	case S_REPLY:
		if (ev->type == TR_EV_MESSAGE && ev->dest.reply_to && !j->reply_name) {
			const char *mc = dc_msg_channel(ev, ev->dest.reply_to);
			dc_call(m, "GET", "GET /channels/{id}/messages/{id}", mc,
			        tr_xasprintf("%s/channels/%s/messages/%s", m->cfg.api_url, mc,
			                     ev->dest.reply_to),
			        NULL);
			return;
		}
		j->step = S_SEND;
		/* fall through */
	case S_SEND: {
		const char *h = dc_map_get(&m->hooks, ch);
		char major[32];
		snprintf(major, sizeof(major), "%.*s", (int)strcspn(h, "/"), h);
		if (ev->type == TR_EV_DELETE) {
			char *tail = tr_xasprintf("/messages/%s", ev->dest.target);
			dc_call(m, "DELETE", "DELETE /webhooks/{id}/{token}/messages/{id}", major,
			        dc_hook_url(m, ch, tail, ev->dest.thread, false), NULL);
			free(tail);
			return;
		}
		if (ev->type == TR_EV_MESSAGE && ev->n_attachments && !j->fetched) {
			dc_fetch_next(m, j);
			return;
		}
		if (!j->pieces) {
			char *jump = NULL;
			const char *guild = dc_map_get(&m->guild_of, ch);
			if (ev->type == TR_EV_MESSAGE && ev->dest.reply_to)
				jump = tr_xasprintf(
				    "https://discord.com/channels/%s/%s/%s", guild ? guild : "@me",
				    dc_msg_channel(ev, ev->dest.reply_to), ev->dest.reply_to);
			/* Only the attachments not uploaded become links. */
			struct tr_event links = *ev;
			links.attachments =
			    tr_xcalloc(ev->n_attachments + 1, sizeof(*links.attachments));
			links.n_attachments = 0;
			for (size_t i = 0; i < ev->n_attachments; i++)
				if (!j->files || !j->files[i].data)
					links.attachments[links.n_attachments++] =
					    ev->attachments[i];
			char *content = dc_content(&links, j->reply_name, j->reply_excerpt, jump);
			free(links.attachments);
			free(jump);
			if (!content) {
				dc_finish(m, TR_E_INVAL, "text not convertible");
				return;
			}
			int rc;
			if (ev->type == TR_EV_EDIT || dc_chars(content) <= DC_MAX_CONTENT) {
				char *one = tr_format_truncate(content, strlen(content), 0,
				                               DC_MAX_CONTENT, TR_DIALECT_PLAIN);
				j->pieces = tr_xcalloc(2, sizeof(char *));
				j->pieces[0] = one;
				j->n_pieces = 1;
				rc = TR_OK;
			} else {
				rc = tr_format_split_limits(
				    content, strlen(content), TR_EVENT_MAX_TEXT * 2, DC_MAX_CONTENT,
				    TR_DIALECT_PLAIN, &j->pieces, &j->n_pieces);
			}
			free(content);
			if (rc != TR_OK || j->n_pieces == 0) {
				dc_finish(m, rc != TR_OK ? rc : TR_E_INVAL, "empty message");
				return;
			}
		}
		const char *piece = j->pieces[j->part];
		if (ev->type == TR_EV_EDIT) {
			char *tail = tr_xasprintf("/messages/%s", ev->dest.target);
			dc_call(m, "PATCH", "PATCH /webhooks/{id}/{token}/messages/{id}", major,
			        dc_hook_url(m, ch, tail, ev->dest.thread, false),
			        dc_webhook_body(piece, ev, false));
			free(tail);
			return;
		}
		if (j->n_uploads && j->part + 1 == j->n_pieces) {
			dc_execute_upload(m, j, major, piece);
			return;
		}
		dc_call(m, "POST", "POST /webhooks/{id}/{token}", major,
		        dc_hook_url(m, ch, "", ev->dest.thread, true),
		        dc_webhook_body(piece, ev, true));
		return;
	}
	case S_THREAD:
		dc_call(m, "POST", "POST /channels/{id}/messages/{id}/threads", ch,
		        tr_xasprintf("%s/channels/%s/messages/%s/threads", m->cfg.api_url, ch,
		                     ev->dest.thread),
		        json_pack("{s:s}", "name", "Thread"));
		return;
	case S_DONE:
		break;
	}
}

static void dc_hook_store(struct discord *m, const char *channel, const char *id, const char *token)
{
	char *v = tr_xasprintf("%s/%s", id, token);
	dc_map_set(&m->hooks, channel, v);
	dc_map_set(&m->hook_ids, id, "1");
	free(v);
	dc_state_save(m, "webhooks", &m->hooks);
}

static void dc_posted(struct discord *m, const char *id)
{
	if (m->posted.len >= DC_POSTED_MAX)
		dc_map_free(&m->posted);
	dc_map_set(&m->posted, id, "1");
}

static void dc_step_ok(struct discord *m, struct dc_job *j, const struct tr_http_resp *r)
{
	const struct tr_event *ev = &j->ev;
	const char *ch = ev->dest.channel;
	json_t *body = dc_json(r);
	switch (j->step) {
	case S_HOOK: {
		size_t i;
		json_t *w;
		json_array_foreach(body, i, w)
		{
			const char *name = json_string_value(json_object_get(w, "name"));
			const char *id = json_string_value(json_object_get(w, "id"));
			const char *tok = json_string_value(json_object_get(w, "token"));
			if (id && tok && name && strcmp(name, DC_HOOK_NAME) == 0) {
				dc_hook_store(m, ch, id, tok);
				j->step = S_REPLY;
				break;
			}
		}
		if (j->step == S_HOOK)
			j->step = S_HOOK_CREATE;
		break;
	}
	case S_HOOK_CREATE: {
		const char *id = json_string_value(json_object_get(body, "id"));
		const char *tok = json_string_value(json_object_get(body, "token"));
		if (!id || !tok) {
			json_decref(body);
			dc_finish(m, TR_E_PROTO, "webhook without id or token");
			return;
		}
		tr_info("created webhook %s for channel %s", id, ch);
		dc_hook_store(m, ch, id, tok);
		j->step = S_REPLY;
		break;
	}
	case S_REPLY: {
		const json_t *a = json_object_get(body, "author");
		const char *g = json_string_value(json_object_get(a, "global_name"));
		const char *u = json_string_value(json_object_get(a, "username"));
		const char *content = json_string_value(json_object_get(body, "content"));
		j->reply_name = tr_xstrdup(g ? g : u ? u : "someone");
		if (content && *content)
			j->reply_excerpt = tr_xstrdup(content);
		j->step = S_SEND;
		break;
	}
	case S_THREAD:
		j->step = S_SEND;
		break;
	case S_SEND:
		if (ev->type == TR_EV_MESSAGE) {
			const char *id = json_string_value(json_object_get(body, "id"));
			if (id) {
				dc_posted(m, id);
				if (!j->first_id)
					j->first_id = tr_xstrdup(id);
			}
			if (++j->part < j->n_pieces)
				break;
			char *first = j->first_id ? tr_xstrdup(j->first_id) : NULL;
			json_decref(body);
			dc_finish(m, TR_OK, first);
			free(first);
			return;
		}
		if (ev->type == TR_EV_DELETE)
			dc_posted(m, ev->dest.target);
		json_decref(body);
		dc_finish(m, TR_OK, ev->type == TR_EV_REACTION ? NULL : ev->dest.target);
		return;
	case S_DONE:
		break;
	}
	json_decref(body);
	dc_run(m);
}

static void dc_step_done(void *arg, const struct tr_http_resp *r)
{
	struct discord *m = arg;
	m->call = NULL;
	struct dc_job *j = m->jobs;
	int64_t now = dc_now(m);
	if (r->call)
		dc_rl_update(&m->rl, m->call_route, m->call_major,
		             tr_http_header(r->call, "X-RateLimit-Bucket"),
		             tr_http_header(r->call, "X-RateLimit-Remaining"),
		             tr_http_header(r->call, "X-RateLimit-Reset-After"), now);
	if (!j)
		return;
	if (j->ev.type == TR_EV_REACTION && j->step != S_SEND)
		j->step = S_SEND;
	if (r->status == 429) {
		json_t *b = dc_json(r);
		json_t *ra = json_object_get(b, "retry_after");
		double secs = json_is_number(ra) ? json_number_value(ra) : r->retry_after_s;
		const char *gh = r->call ? tr_http_header(r->call, "X-RateLimit-Global") : NULL;
		bool global =
		    json_is_true(json_object_get(b, "global")) || (gh && strcmp(gh, "true") == 0);
		json_decref(b);
		int64_t ms = dc_rl_limited(&m->rl, m->call_route, m->call_major, secs, global, now);
		tr_info("rate limited on %s%s: retrying in %lld ms", m->call_route,
		        global ? " (global)" : "", (long long)ms);
		uv_timer_start(&m->job_timer, dc_job_timer, (uint64_t)ms, 0);
		return;
	}
	if (r->err != TR_OK || r->status >= 500) {
		if (++j->tries >= DC_MAX_TRIES) {
			dc_finish(m, r->err ? r->err : TR_E_IO, "Discord unreachable");
			return;
		}
		uv_timer_start(&m->job_timer, dc_job_timer, 250u << (j->tries < 6 ? j->tries : 6),
		               0);
		return;
	}
	if (r->status >= 200 && r->status < 300) {
		dc_step_ok(m, j, r);
		return;
	}
	int code = dc_api_code(r);
	if (code == 10015 && j->step == S_SEND) {
		/* Our webhook was deleted by someone: make a new one. */
		const char *h = dc_map_get(&m->hooks, j->ev.dest.channel);
		if (h) {
			char *id = tr_xstrndup(h, strcspn(h, "/"));
			free(tr_map_del(&m->hook_ids, id, strlen(id)));
			free(id);
		}
		free(tr_map_del(&m->hooks, j->ev.dest.channel, strlen(j->ev.dest.channel)));
		dc_state_save(m, "webhooks", &m->hooks);
		j->step = S_HOOK_CREATE;
		dc_run(m);
		return;
	}
	if (code == 10003 && j->step == S_SEND && j->ev.dest.thread && !j->thread_tried &&
	    j->ev.type == TR_EV_MESSAGE) {
		/* The thread's starter message has no thread on Discord yet: start one. */
		j->thread_tried = true;
		j->step = S_THREAD;
		dc_run(m);
		return;
	}
	if (j->step == S_REPLY) {
		/* The replied-to message is gone: the jump link alone. */
		j->reply_name = tr_xstrdup("");
		j->step = S_SEND;
		dc_run(m);
		return;
	}
	char detail[96];
	snprintf(detail, sizeof(detail), "HTTP %ld, Discord code %d", r->status, code);
	dc_finish(m, tr_http_status_err(r->status), detail);
}

static int discord_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct discord *m = dc_of(c);
	const char *ch = ev->dest.channel;
	if (!ch || !*ch || strspn(ch, "0123456789") != strlen(ch))
		return TR_E_INVAL;
	struct dc_job *j = tr_xcalloc(1, sizeof(*j));
	if (tr_event_copy(ev, &j->ev) != TR_OK) {
		free(j);
		return TR_E_INVAL;
	}
	*m->jobs_tail = j;
	m->jobs_tail = &j->next;
	dc_run(m);
	return TR_OK;
}

/* ---------------------------------------------------------------- teardown */

static void discord_disconnect(struct tr_conn *c)
{
	struct discord *m = dc_of(c);
	m->ready = false;
	if (m->ws) {
		tr_ws_close(m->ws);
		m->ws = NULL;
	}
	/* lws keeps libuv handles active: the context goes too, so the loop can end at a stop,
	 * and connect() makes a new one. */
	tr_ws_ctx_free(m->wsx);
	m->wsx = NULL;
	if (m->gw_call) {
		tr_http_cancel(m->gw_call);
		m->gw_call = NULL;
	}
	if (m->call) {
		tr_http_cancel(m->call);
		m->call = NULL;
	}
	if (m->bf_call) {
		tr_http_cancel(m->bf_call);
		m->bf_call = NULL;
		m->need_backfill = true;
	}
	if (m->timers) {
		uv_timer_stop(&m->hb_timer);
		uv_timer_stop(&m->job_timer);
	}
}

static void dc_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void discord_release(struct tr_conn *c)
{
	struct discord *m = dc_of(c);
	while (m->jobs) {
		struct dc_job *j = m->jobs;
		m->jobs = j->next;
		dc_job_free(j);
	}
	if (m->http)
		tr_http_free(m->http);
	m->http = NULL;
	if (m->wsx) {
		tr_ws_ctx_free(m->wsx);
		m->wsx = NULL;
		for (int i = 0; i < 1000 && tr_ws_ctx_live(); i++)
			uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	}
	if (m->timers) {
		uv_close((uv_handle_t *)&m->hb_timer, dc_timer_closed);
		uv_close((uv_handle_t *)&m->job_timer, dc_timer_closed);
	}
	uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	for (size_t i = 0; i < m->bf_n; i++)
		free(m->bf_channels[i]);
	free(m->bf_channels);
	dc_map_free(&m->threads);
	dc_map_free(&m->names);
	dc_map_free(&m->guild_of);
	dc_map_free(&m->hooks);
	dc_map_free(&m->hook_ids);
	dc_map_free(&m->posted);
	dc_map_free(&m->cursors);
	tr_map_cleanup(&m->threads);
	tr_map_cleanup(&m->names);
	tr_map_cleanup(&m->guild_of);
	tr_map_cleanup(&m->hooks);
	tr_map_cleanup(&m->hook_ids);
	tr_map_cleanup(&m->posted);
	tr_map_cleanup(&m->cursors);
	dc_rl_cleanup(&m->rl);
	free(m->gateway_base);
	free(m->session_id);
	free(m->resume_url);
	free(m->self_id);
	free(m->self_name);
	free(m->cfg.token);
	free(m->cfg.api_url);
	free(m->cfg.gateway_url);
}

const struct tr_connector discord_connector = {
    .network = "discord",
    .state_size = sizeof(struct discord),
    .caps = TR_CAP_EDIT | TR_CAP_DELETE | TR_CAP_REACT | TR_CAP_THREAD | TR_CAP_PUPPET,
    .configure = discord_configure,
    .connect = discord_connect,
    .deliver = discord_deliver,
    .disconnect = discord_disconnect,
    .release = discord_release,
};
