/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-matrix: the connector's lifecycle. Appservice mode (default) serves the AS API (
 * transactions idempotent by txnId across restarts) and posts as puppets through as_token +
 * user_id; bot mode long-polls /sync from a since token kept in the state dir. Deliveries run
 * one at a time through a small step machine (room check, register, profile, avatar, join,
 * attachments, send), each request retried on 429 after Retry-After with the same txnId. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "alloc.h"
#include "log.h"
#include "matrix.h"

#define MX_SYNC_TIMEOUT_MS  30000
#define MX_MAX_TRIES        8
#define MX_AVATAR_MAX       (1024 * 1024)
#define MX_ATTACH_MAX       (8 * 1024 * 1024)
#define MX_RETRY_MAX_MS     60000
#define MX_NOTICE_ENCRYPTED "This room is end-to-end encrypted: Trestle does not bridge it."

enum mx_step {
	S_ROOM_JOIN = 0,
	S_ROOM_ENC,
	S_ROOM_MEMBERS,
	S_ROOM_NOTICE,
	S_REGISTER,
	S_NAME,
	S_AVATAR_GET,
	S_AVATAR_UP,
	S_AVATAR_SET,
	S_JOIN,
	S_INVITE,
	S_ATTACH_GET,
	S_ATTACH_UP,
	S_ATTACH_SEND,
	S_SEND,
	S_DONE,
};

struct matrix_job {
	struct matrix_job *next;
	bool room_only; /* a channel to join, no event to deliver */
	struct tr_event ev;
	char *room;
	char *user; /* who posts: the puppet, or the bot */
	char *display;
	enum mx_step step;
	unsigned tries;
	size_t part; /* attachment index */
	char *mxc;   /* the attachment just uploaded */
	char *blob_type;
	struct tr_buf blob;  /* a fetched avatar or attachment */
	struct tr_buf links; /* attachments that could not be uploaded, as links */
	bool joined_retry;
};

static struct matrix *mx_of(struct tr_conn *c)
{
	return tr_conn_state(c);
}

/* ---------------------------------------------------------------- settings */

static void mx_cfg_free(struct matrix_cfg *cfg)
{
	free(cfg->hs_url);
	free(cfg->server_name);
	free(cfg->as_token);
	free(cfg->hs_token);
	free(cfg->as_listen);
	free(cfg->as_id);
	free(cfg->as_url);
	free(cfg->access_token);
	free(cfg->bot_localpart);
	free(cfg->puppet_pattern);
	free(cfg->prefix_tpl);
	memset(cfg, 0, sizeof(*cfg));
}

static void mx_cfg_read(struct tr_env *env, struct matrix_cfg *cfg, bool registration)
{
	cfg->hs_url = registration ? tr_env_str(env, "MATRIX_HOMESERVER_URL", NULL)
	                           : tr_env_required(env, "MATRIX_HOMESERVER_URL");
	cfg->server_name = tr_env_required(env, "MATRIX_SERVER_NAME");
	cfg->access_token = tr_env_str(env, "MATRIX_ACCESS_TOKEN", NULL);
	cfg->appservice = !cfg->access_token;
	cfg->as_token = tr_env_str(env, "MATRIX_AS_TOKEN", NULL);
	cfg->hs_token = tr_env_str(env, "MATRIX_HS_TOKEN", NULL);
	cfg->as_listen = tr_env_str(env, "MATRIX_AS_LISTEN", "127.0.0.1:29330");
	cfg->as_url = tr_env_str(env, "MATRIX_AS_URL", NULL);
	cfg->as_id = tr_env_str(env, "MATRIX_AS_ID", "trestle");
	cfg->bot_localpart = tr_env_str(env, "MATRIX_BOT_LOCALPART", "_trestle_bot");
	cfg->puppet_pattern = tr_env_str(env, "MATRIX_PUPPET_PATTERN", "_trestle_{network}_{id}");
	cfg->prefix_tpl = tr_env_str(env, "MATRIX_PREFIX_TEMPLATE", "<{name}> ");
	if (cfg->hs_url) {
		size_t n = strlen(cfg->hs_url);
		while (n && cfg->hs_url[n - 1] == '/')
			cfg->hs_url[--n] = '\0';
		if (strncmp(cfg->hs_url, "http://", 7) != 0 &&
		    strncmp(cfg->hs_url, "https://", 8) != 0)
			tr_env_fail(env, "MATRIX_HOMESERVER_URL", "must be an http(s):// URL");
	}
	if (!strstr(cfg->puppet_pattern, "{id}") || cfg->puppet_pattern[0] == '{')
		tr_env_fail(env, "MATRIX_PUPPET_PATTERN",
		            "must hold {id} and start with a literal prefix");
	if (cfg->appservice && !registration) {
		if (!cfg->as_token)
			tr_env_fail(env, "MATRIX_AS_TOKEN",
			            "required in appservice mode (or set MATRIX_ACCESS_TOKEN)");
		if (!cfg->hs_token)
			tr_env_fail(env, "MATRIX_HS_TOKEN", "required in appservice mode");
	}
}

static int matrix_configure(struct tr_conn *c, struct tr_env *env)
{
	struct matrix *m = mx_of(c);
	m->c = c;
	mx_cfg_read(env, &m->cfg, false);
	tr_map_init(&m->registered);
	tr_map_init(&m->profile);
	tr_map_init(&m->avatars);
	tr_map_init(&m->joined);
	tr_map_init(&m->names);
	tr_map_init(&m->encrypted);
	tr_map_init(&m->room_check);
	tr_map_init(&m->reactions);
	m->jobs_tail = &m->jobs;
	if (m->cfg.server_name)
		m->user_id = tr_xasprintf("@%s:%s", m->cfg.bot_localpart, m->cfg.server_name);
	return TR_OK;
}

/* ---------------------------------------------------------------- small helpers */

static void mx_map_set(struct tr_map *map, const char *key, const char *val)
{
	free(tr_map_put(map, key, strlen(key), tr_xstrdup(val ? val : "")));
}

static const char *mx_map_get(const struct tr_map *map, const char *key)
{
	return tr_map_get(map, key, strlen(key));
}

static void mx_map_free(struct tr_map *map)
{
	size_t it = 0;
	void *v;
	while (tr_map_next(map, &it, NULL, NULL, &v))
		free(v);
	tr_map_cleanup(map);
}

static const char *mx_display(void *arg, const char *room, const char *user)
{
	struct matrix *m = arg;
	char *k = tr_xasprintf("%s\x1f%s", room, user);
	const char *v = mx_map_get(&m->names, k);
	free(k);
	return v;
}

static struct matrix_map_ctx mx_ctx(struct matrix *m)
{
	return (struct matrix_map_ctx){.connector = tr_conn_name(m->c),
	                               .hs_url = m->cfg.hs_url,
	                               .server_name = m->cfg.server_name,
	                               .bot_user = m->user_id,
	                               .puppet_pattern = m->cfg.puppet_pattern,
	                               .display = mx_display,
	                               .arg = m};
}

static bool mx_in_channels(struct matrix *m, const char *room)
{
	size_t n = 0;
	const char *const *ch = tr_conn_channels(m->c, &n);
	for (size_t i = 0; ch && i < n; i++)
		if (strcmp(ch[i], room) == 0)
			return true;
	return false;
}

/* Builds hs_url + parts: a part starting with '/' is literal, any other is one escaped path
 * segment. In appservice mode ?user_id= asserts who acts (identity assertion). */
static char *mx_url(struct matrix *m, const char *as_user, const char *query, ...)
{
	struct tr_buf b;
	tr_buf_init(&b, 16 * 1024);
	int rc = tr_buf_appends(&b, m->cfg.hs_url);
	va_list ap;
	va_start(ap, query);
	const char *part;
	while (rc == TR_OK && (part = va_arg(ap, const char *))) {
		if (part[0] == '/') {
			rc = tr_buf_appends(&b, part);
		} else {
			char *e = tr_http_escape(part);
			rc = tr_buf_appends(&b, e);
			free(e);
		}
	}
	va_end(ap);
	char sep = '?';
	if (rc == TR_OK && m->cfg.appservice && as_user) {
		char *e = tr_http_escape(as_user);
		rc = tr_buf_printf(&b, "?user_id=%s", e);
		free(e);
		sep = '&';
	}
	if (rc == TR_OK && query)
		rc = tr_buf_printf(&b, "%c%s", sep, query);
	return tr_buf_take(&b);
}

static int mx_request(struct matrix *m, const char *method, char *url, json_t *body,
                      const struct tr_buf *raw, const char *ctype, unsigned timeout_ms,
                      size_t max_resp, bool authed, tr_http_done_fn *done, void *arg,
                      struct tr_http_call **call)
{
	char *data = NULL;
	size_t len = 0;
	if (body) {
		data = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!data) {
			free(url);
			return TR_E_NOMEM;
		}
		len = strlen(data);
	}
	const char *tok = m->cfg.appservice ? m->cfg.as_token : m->cfg.access_token;
	char *h_auth = tr_xasprintf("Authorization: Bearer %s", tok ? tok : "");
	char *h_ct = tr_xasprintf("Content-Type: %s", ctype ? ctype : "application/json");
	const char *headers[2] = {h_auth, h_ct};
	struct tr_http_req req = {.method = method,
	                          .url = url,
	                          .headers = authed ? headers : headers + 1,
	                          .n_headers = authed ? 2 : 1,
	                          .body = raw ? (const void *)raw->data : data,
	                          .body_len = raw ? raw->len : len,
	                          .timeout_ms = timeout_ms,
	                          .max_response = max_resp};
	int rc = tr_http_request(m->http, &req, done, arg, call);
	free(h_auth);
	free(h_ct);
	free(data);
	free(url);
	return rc;
}

static const char *mx_errcode(const struct tr_http_resp *r, char *buf, size_t n)
{
	buf[0] = '\0';
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	const char *e = json_string_value(json_object_get(j, "errcode"));
	if (e)
		snprintf(buf, n, "%s", e);
	json_decref(j);
	return buf;
}

/* The delay a 429 asks for: Retry-After, else retry_after_ms, else one second. */
static uint64_t mx_retry_ms(const struct tr_http_resp *r)
{
	if (r->retry_after_s >= 0)
		return (uint64_t)(r->retry_after_s * 1000.0);
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	json_t *ms = json_object_get(j, "retry_after_ms");
	uint64_t v = json_is_integer(ms) && json_integer_value(ms) >= 0
	                 ? (uint64_t)json_integer_value(ms)
	                 : 1000;
	json_decref(j);
	return v > MX_RETRY_MAX_MS ? MX_RETRY_MAX_MS : v;
}

/* ---------------------------------------------------------------- the delivery queue */

static void mx_job_free(struct matrix_job *j)
{
	if (!j)
		return;
	tr_event_cleanup(&j->ev);
	free(j->room);
	free(j->user);
	free(j->display);
	free(j->mxc);
	free(j->blob_type);
	tr_buf_cleanup(&j->blob);
	tr_buf_cleanup(&j->links);
	free(j);
}

static void mx_run(struct matrix *m);

/* Finishes the head job: one ack for its event, then the next job. */
static void mx_finish(struct matrix *m, int err, const char *msgid_or_detail)
{
	struct matrix_job *j = m->jobs;
	if (!j)
		return;
	m->jobs = j->next;
	if (!m->jobs)
		m->jobs_tail = &m->jobs;
	if (!j->room_only)
		tr_conn_ack(m->c, &j->ev, err, msgid_or_detail);
	else if (err != TR_OK)
		tr_warn("channel %s not joined: %s", j->room, tr_str(msgid_or_detail));
	mx_job_free(j);
	mx_run(m);
}

static void mx_timer_fire(uv_timer_t *t)
{
	mx_run(t->data);
}

static void mx_retry_later(struct matrix *m, uint64_t ms)
{
	uv_timer_start(&m->timer, mx_timer_fire, ms, 0);
}

static void mx_step_done(void *arg, const struct tr_http_resp *r);

static void mx_call(struct matrix *m, const char *method, char *url, json_t *body)
{
	int rc =
	    mx_request(m, method, url, body, NULL, NULL, 0, 0, true, mx_step_done, m, &m->call);
	if (rc != TR_OK) {
		m->call = NULL;
		mx_finish(m, rc, "request not started");
	}
}

static char *mx_key2(const char *a, const char *b)
{
	return tr_xasprintf("%s\x1f%s", a, b);
}

static bool mx_room_encrypted(struct matrix *m, const char *room)
{
	return tr_map_get(&m->encrypted, room, strlen(room)) != NULL;
}

static void mx_mark_encrypted(struct matrix *m, const char *room)
{
	if (mx_room_encrypted(m, room))
		return;
	mx_map_set(&m->encrypted, room, "");
	tr_warn("room %s is encrypted: not bridged", room);
	if (mx_in_channels(m, room))
		tr_conn_degraded(m->c, "encrypted rooms are not bridged");
}

/* Issues the request of the head job's current step, or skips steps that have nothing to do. */
static void mx_run(struct matrix *m)
{
	struct matrix_job *j = m->jobs;
	if (!j || m->call || uv_is_active((uv_handle_t *)&m->timer) || !m->online)
		return;
	const char *bot = m->user_id;
	for (;;) {
		switch (j->step) {
		case S_ROOM_JOIN:
			if (mx_map_get(&m->room_check, j->room)) {
				j->step = S_ROOM_NOTICE;
				continue;
			}
			mx_call(m, "POST",
			        mx_url(m, bot, NULL, "/_matrix/client/v3/join/", j->room, NULL),
			        json_object());
			return;
		case S_ROOM_ENC:
			mx_call(m, "GET",
			        mx_url(m, bot, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/state/m.room.encryption/", NULL),
			        NULL);
			return;
		case S_ROOM_MEMBERS:
			mx_call(m, "GET",
			        mx_url(m, bot, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/joined_members", NULL),
			        NULL);
			return;
		case S_ROOM_NOTICE: {
			const char *st = mx_map_get(&m->encrypted, j->room);
			if (!st) {
				if (j->room_only) {
					mx_finish(m, TR_OK, NULL);
					return;
				}
				j->step = m->cfg.appservice ? S_REGISTER : S_SEND;
				continue;
			}
			if (*st) { /* already told the room */
				mx_finish(m, TR_E_FORBIDDEN, "room is encrypted");
				return;
			}
			char txn[96];
			snprintf(txn, sizeof(txn), "tr-encrypted-notice-%s", m->user_id);
			json_t *c = json_pack("{s:s, s:s, s:{}}", "msgtype", "m.notice", "body",
			                      MX_NOTICE_ENCRYPTED, "m.mentions");
			mx_call(m, "PUT",
			        mx_url(m, bot, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/send/m.room.message/", txn, NULL),
			        c);
			return;
		}
		case S_REGISTER: {
			if (mx_map_get(&m->registered, j->user)) {
				j->step = S_NAME;
				continue;
			}
			const char *lp = j->user + 1;
			char *localpart = tr_xstrndup(lp, (size_t)(strrchr(j->user, ':') - lp));
			json_t *b =
			    json_pack("{s:s, s:s, s:b}", "type", "m.login.application_service",
			              "username", localpart, "inhibit_login", 1);
			free(localpart);
			mx_call(m, "POST",
			        mx_url(m, NULL, NULL, "/_matrix/client/v3/register", NULL), b);
			return;
		}
		case S_NAME: {
			const char *have = mx_map_get(&m->profile, j->user);
			const char *want = j->display;
			if (!want || (have && strcmp(have, want) == 0)) {
				j->step = S_AVATAR_GET;
				continue;
			}
			mx_call(m, "PUT",
			        mx_url(m, j->user, NULL, "/_matrix/client/v3/profile/", j->user,
			               "/displayname", NULL),
			        json_pack("{s:s}", "displayname", want));
			return;
		}
		case S_AVATAR_GET: {
			const char *src = j->ev.author.avatar;
			char *k = mx_key2("avatar", j->user);
			const char *have = mx_map_get(&m->profile, k);
			free(k);
			if (!src ||
			    (strncmp(src, "http://", 7) != 0 && strncmp(src, "https://", 8) != 0) ||
			    (have && strcmp(have, src) == 0)) {
				j->step = S_JOIN;
				continue;
			}
			if (mx_map_get(&m->avatars, src)) {
				j->step = S_AVATAR_SET;
				continue;
			}
			tr_buf_reset(&j->blob);
			int rc = mx_request(m, "GET", tr_xstrdup(src), NULL, NULL, NULL, 10000,
			                    MX_AVATAR_MAX, false, mx_step_done, m, &m->call);
			if (rc != TR_OK) {
				m->call = NULL;
				j->step = S_JOIN;
				continue;
			}
			return;
		}
		case S_AVATAR_UP: {
			int rc = mx_request(
			    m, "POST",
			    mx_url(m, j->user, "filename=avatar", "/_matrix/media/v3/upload", NULL),
			    NULL, &j->blob, j->blob_type, 30000, 0, true, mx_step_done, m,
			    &m->call);
			if (rc != TR_OK) {
				m->call = NULL;
				j->step = S_JOIN;
				continue;
			}
			return;
		}
		case S_AVATAR_SET: {
			const char *mxc = mx_map_get(&m->avatars, j->ev.author.avatar);
			mx_call(m, "PUT",
			        mx_url(m, j->user, NULL, "/_matrix/client/v3/profile/", j->user,
			               "/avatar_url", NULL),
			        json_pack("{s:s}", "avatar_url", mxc ? mxc : ""));
			return;
		}
		case S_JOIN: {
			char *k = mx_key2(j->user, j->room);
			bool have = mx_map_get(&m->joined, k) != NULL;
			free(k);
			if (have) {
				j->step = S_ATTACH_GET;
				continue;
			}
			mx_call(m, "POST",
			        mx_url(m, j->user, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/join", NULL),
			        json_object());
			return;
		}
		case S_INVITE:
			mx_call(m, "POST",
			        mx_url(m, bot, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/invite", NULL),
			        json_pack("{s:s}", "user_id", j->user));
			return;
		case S_ATTACH_GET: {
			if (j->ev.type != TR_EV_MESSAGE || j->part >= j->ev.n_attachments) {
				j->step = S_SEND;
				continue;
			}
			const char *url = j->ev.attachments[j->part].url;
			if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) {
				if (tr_buf_printf(&j->links, "\n%s", url) != TR_OK)
					tr_warn("attachment links too long");
				j->part++;
				continue;
			}
			tr_buf_reset(&j->blob);
			int rc = mx_request(m, "GET", tr_xstrdup(url), NULL, NULL, NULL, 30000,
			                    MX_ATTACH_MAX, false, mx_step_done, m, &m->call);
			if (rc != TR_OK) {
				m->call = NULL;
				j->part++;
				continue;
			}
			return;
		}
		case S_ATTACH_UP: {
			const struct tr_attachment *a = &j->ev.attachments[j->part];
			char *fn = tr_http_escape(a->name ? a->name : "file");
			char *q = tr_xasprintf("filename=%s", fn);
			free(fn);
			int rc = mx_request(m, "POST",
			                    mx_url(m, j->user, q, "/_matrix/media/v3/upload", NULL),
			                    NULL, &j->blob, a->mime ? a->mime : j->blob_type, 60000,
			                    0, true, mx_step_done, m, &m->call);
			free(q);
			if (rc != TR_OK) {
				m->call = NULL;
				j->part++;
				j->step = S_ATTACH_GET;
				continue;
			}
			return;
		}
		case S_ATTACH_SEND: {
			char *txn = matrix_txn_id(&j->ev, (unsigned)j->part + 1);
			json_t *c =
			    matrix_attachment_content(&j->ev, &j->ev.attachments[j->part], j->mxc);
			mx_call(m, "PUT",
			        mx_url(m, j->user, NULL, "/_matrix/client/v3/rooms/", j->room,
			               "/send/m.room.message/", txn, NULL),
			        c);
			free(txn);
			return;
		}
		case S_SEND: {
			char *txn = matrix_txn_id(&j->ev, 0);
			const struct tr_event *ev = &j->ev;
			const char *name =
			    ev->author.display ? ev->author.display : ev->author.name;
			if (!name)
				name = ev->author.id;
			if (ev->type == TR_EV_MESSAGE || ev->type == TR_EV_EDIT) {
				if (ev->type == TR_EV_EDIT && !ev->dest.target) {
					free(txn);
					mx_finish(m, TR_E_NOTFOUND, "edit of an unknown message");
					return;
				}
				if (ev->type == TR_EV_MESSAGE && (!ev->text || !*ev->text) &&
				    !j->links.len) {
					free(txn);
					/* Only attachments, all sent: ack with the last one. */
					mx_finish(m, TR_OK, j->mxc ? j->mxc : NULL);
					return;
				}
				struct tr_event tmp = *ev;
				char *withlinks = NULL;
				if (j->links.len) {
					withlinks = tr_xasprintf("%s%s", ev->text ? ev->text : "",
					                         tr_buf_str(&j->links));
					tmp.text = withlinks;
				}
				json_t *c = matrix_message_content(&tmp, m->cfg.prefix_tpl,
				                                   m->cfg.appservice ? NULL : name);
				free(withlinks);
				mx_call(m, "PUT",
				        mx_url(m, j->user, NULL, "/_matrix/client/v3/rooms/",
				               j->room, "/send/m.room.message/", txn, NULL),
				        c);
			} else if (ev->type == TR_EV_DELETE) {
				if (!ev->dest.target) {
					free(txn);
					mx_finish(m, TR_E_NOTFOUND, "delete of an unknown message");
					return;
				}
				mx_call(m, "PUT",
				        mx_url(m, j->user, NULL, "/_matrix/client/v3/rooms/",
				               j->room, "/redact/", ev->dest.target, "/", txn,
				               NULL),
				        json_object());
			} else if (ev->type == TR_EV_REACTION) {
				if (!ev->dest.target || !ev->reaction) {
					free(txn);
					mx_finish(m, TR_E_NOTFOUND,
					          "reaction to an unknown message");
					return;
				}
				if (ev->removed) {
					char *k = tr_xasprintf("%s\x1f%s\x1f%s", j->user,
					                       ev->dest.target, ev->reaction);
					const char *rid = mx_map_get(&m->reactions, k);
					free(k);
					if (!rid) {
						free(txn);
						mx_finish(m, TR_E_NOTFOUND, "reaction not known");
						return;
					}
					mx_call(m, "PUT",
					        mx_url(m, j->user, NULL,
					               "/_matrix/client/v3/rooms/", j->room,
					               "/redact/", rid, "/", txn, NULL),
					        json_object());
				} else {
					json_t *c =
					    json_pack("{s:{s:s, s:s, s:s}}", "m.relates_to",
					              "rel_type", "m.annotation", "event_id",
					              ev->dest.target, "key", ev->reaction);
					mx_call(m, "PUT",
					        mx_url(m, j->user, NULL,
					               "/_matrix/client/v3/rooms/", j->room,
					               "/send/m.reaction/", txn, NULL),
					        c);
				}
			} else if (ev->type == TR_EV_TOPIC) {
				mx_call(m, "PUT",
				        mx_url(m, bot, NULL, "/_matrix/client/v3/rooms/", j->room,
				               "/state/m.room.topic/", NULL),
				        json_pack("{s:s}", "topic", ev->text ? ev->text : ""));
			} else {
				/* join/leave of people elsewhere: nothing to show on Matrix. */
				mx_finish(m, TR_OK, NULL);
			}
			free(txn);
			return;
		}
		case S_DONE:
			mx_finish(m, TR_OK, NULL);
			return;
		}
	}
}

static char *mx_resp_str(const struct tr_http_resp *r, const char *key)
{
	json_t *j = json_loadb(r->body, r->len, 0, NULL);
	char *v = tr_xstrdup(json_string_value(json_object_get(j, key)));
	json_decref(j);
	return v;
}

/* The head job's request answered: decide the next step. */
static void mx_step_done(void *arg, const struct tr_http_resp *r)
{
	struct matrix *m = arg;
	m->call = NULL;
	struct matrix_job *j = m->jobs;
	if (!j)
		return;
	char code[64];
	bool media_fetch = j->step == S_AVATAR_GET || j->step == S_ATTACH_GET;
	/* Rate limited: the same step again after the delay asked, with the same txnId. */
	if (!media_fetch && r->err == TR_E_RATELIMIT && ++j->tries <= MX_MAX_TRIES) {
		uint64_t ms = mx_retry_ms(r);
		tr_info("rate limited: retrying in %llu ms step=%d room=%s", (unsigned long long)ms,
		        (int)j->step, j->room);
		mx_retry_later(m, ms);
		return;
	}
	if (!media_fetch && (r->err == TR_E_IO || r->err == TR_E_TIMEOUT || r->status >= 500) &&
	    ++j->tries <= 3) {
		mx_retry_later(m, 500u << j->tries);
		return;
	}
	bool ok = r->err == TR_OK && r->status == 200;
	int err = r->err != TR_OK ? r->err : tr_http_status_err(r->status);
	enum mx_step s = j->step;
	j->tries = 0;
	switch (s) {
	case S_ROOM_JOIN:
		if (!ok) {
			mx_finish(m, err, mx_errcode(r, code, sizeof(code)));
			return;
		}
		j->step = S_ROOM_ENC;
		break;
	case S_ROOM_ENC:
		if (ok)
			mx_mark_encrypted(m, j->room);
		else if (r->status != 404) {
			mx_finish(m, err, "cannot read room state");
			return;
		}
		mx_map_set(&m->room_check, j->room, "1");
		j->step = S_ROOM_MEMBERS;
		break;
	case S_ROOM_MEMBERS:
		/* Display names of the people already there (later ones come with member events).
		 */
		if (ok) {
			json_t *body = json_loadb(r->body, r->len, 0, NULL);
			const char *uid;
			json_t *info;
			json_object_foreach(json_object_get(body, "joined"), uid, info)
			{
				const char *dn =
				    json_string_value(json_object_get(info, "display_name"));
				char *k = mx_key2(j->room, uid);
				if (dn)
					mx_map_set(&m->names, k, dn);
				free(k);
			}
			json_decref(body);
		}
		j->step = S_ROOM_NOTICE;
		break;
	case S_ROOM_NOTICE:
		/* Told once; later deliveries are refused without a word in the room. */
		mx_map_set(&m->encrypted, j->room, "n");
		mx_finish(m, TR_E_FORBIDDEN, "room is encrypted");
		return;
	case S_REGISTER:
		if (ok || (r->status == 400 &&
		           strcmp(mx_errcode(r, code, sizeof(code)), "M_USER_IN_USE") == 0)) {
			mx_map_set(&m->registered, j->user, "1");
			j->step = S_NAME;
		} else {
			mx_finish(m, err, "puppet registration refused");
			return;
		}
		break;
	case S_NAME:
		if (ok)
			mx_map_set(&m->profile, j->user, j->display);
		else
			tr_warn("display name not set for %s status=%ld", j->user, r->status);
		j->step = S_AVATAR_GET;
		break;
	case S_AVATAR_GET:
		if (ok && r->len) {
			tr_buf_reset(&j->blob);
			free(j->blob_type);
			const char *ct = tr_http_header(r->call, "Content-Type");
			j->blob_type = tr_xstrdup(ct ? ct : "application/octet-stream");
			if (tr_buf_append(&j->blob, r->body, r->len) == TR_OK) {
				j->step = S_AVATAR_UP;
				break;
			}
		}
		tr_warn("avatar not fetched for %s status=%ld", j->user, r->status);
		j->step = S_JOIN;
		break;
	case S_AVATAR_UP: {
		char *uri = ok ? mx_resp_str(r, "content_uri") : NULL;
		if (uri) {
			mx_map_set(&m->avatars, j->ev.author.avatar, uri);
			j->step = S_AVATAR_SET;
		} else {
			tr_warn("avatar upload failed status=%ld", r->status);
			j->step = S_JOIN;
		}
		free(uri);
		break;
	}
	case S_AVATAR_SET:
		if (ok) {
			char *k = mx_key2("avatar", j->user);
			mx_map_set(&m->profile, k, j->ev.author.avatar);
			free(k);
		}
		j->step = S_JOIN;
		break;
	case S_JOIN:
		if (ok) {
			char *k = mx_key2(j->user, j->room);
			mx_map_set(&m->joined, k, "1");
			free(k);
			j->step = S_ATTACH_GET;
		} else if (r->status == 403 && !j->joined_retry) {
			j->joined_retry = true;
			j->step = S_INVITE;
		} else {
			mx_finish(m, err, "puppet cannot join");
			return;
		}
		break;
	case S_INVITE:
		/* Already invited or joined is fine: join again. */
		j->step = S_JOIN;
		break;
	case S_ATTACH_GET:
		if (ok) {
			tr_buf_reset(&j->blob);
			free(j->blob_type);
			const char *ct = tr_http_header(r->call, "Content-Type");
			j->blob_type = tr_xstrdup(ct ? ct : "application/octet-stream");
			if (tr_buf_append(&j->blob, r->body, r->len) == TR_OK) {
				j->step = S_ATTACH_UP;
				break;
			}
		}
		/* Not fetchable: sent as a link in the text. */
		if (tr_buf_printf(&j->links, "\n%s", j->ev.attachments[j->part].url) != TR_OK)
			tr_warn("attachment links too long");
		j->part++;
		j->step = S_ATTACH_GET;
		break;
	case S_ATTACH_UP: {
		free(j->mxc);
		j->mxc = ok ? mx_resp_str(r, "content_uri") : NULL;
		if (j->mxc) {
			j->step = S_ATTACH_SEND;
		} else {
			if (tr_buf_printf(&j->links, "\n%s", j->ev.attachments[j->part].url) !=
			    TR_OK)
				tr_warn("attachment links too long");
			j->part++;
			j->step = S_ATTACH_GET;
		}
		break;
	}
	case S_ATTACH_SEND:
		if (!ok) {
			mx_finish(m, err, "attachment refused");
			return;
		}
		free(j->mxc);
		j->mxc = mx_resp_str(r, "event_id");
		j->part++;
		j->step = S_ATTACH_GET;
		break;
	case S_SEND: {
		if (!ok) {
			mx_finish(m, err, mx_errcode(r, code, sizeof(code)));
			return;
		}
		char *eid = mx_resp_str(r, "event_id");
		const struct tr_event *ev = &j->ev;
		if (ev->type == TR_EV_REACTION && eid && !ev->removed) {
			char *k =
			    tr_xasprintf("%s\x1f%s\x1f%s", j->user, ev->dest.target, ev->reaction);
			mx_map_set(&m->reactions, k, eid);
			free(k);
		}
		mx_finish(m, TR_OK, eid);
		free(eid);
		return;
	}
	case S_DONE:
		break;
	}
	mx_run(m);
}

static void mx_enqueue(struct matrix *m, struct matrix_job *j)
{
	*m->jobs_tail = j;
	m->jobs_tail = &j->next;
	mx_run(m);
}

static int matrix_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct matrix *m = mx_of(c);
	const char *room = ev->dest.channel;
	if (room[0] != '!')
		return TR_E_INVAL;
	struct matrix_job *j = tr_xcalloc(1, sizeof(*j));
	if (tr_event_copy(ev, &j->ev) != TR_OK) {
		free(j);
		return TR_E_INVAL;
	}
	tr_buf_init(&j->blob, MX_ATTACH_MAX);
	tr_buf_init(&j->links, 16 * 1024);
	j->room = tr_xstrdup(room);
	if (m->cfg.appservice) {
		char *lp = matrix_puppet_localpart(m->cfg.puppet_pattern,
		                                   ev->network ? ev->network : "x", ev->author.id);
		if (!lp) {
			mx_job_free(j);
			return TR_E_INVAL;
		}
		j->user = tr_xasprintf("@%s:%s", lp, m->cfg.server_name);
		free(lp);
		const char *d = ev->author.display ? ev->author.display : ev->author.name;
		j->display = tr_xstrdup(d ? d : ev->author.id);
	} else {
		j->user = tr_xstrdup(m->user_id);
	}
	mx_enqueue(m, j);
	return TR_OK;
}

static int matrix_set_channels(struct tr_conn *c, const char *const *ids, size_t n)
{
	struct matrix *m = mx_of(c);
	for (size_t i = 0; i < n; i++) {
		if (ids[i][0] != '!' || mx_map_get(&m->room_check, ids[i]))
			continue;
		struct matrix_job *j = tr_xcalloc(1, sizeof(*j));
		j->room_only = true;
		j->room = tr_xstrdup(ids[i]);
		tr_buf_init(&j->blob, 1);
		tr_buf_init(&j->links, 1);
		mx_enqueue(m, j);
	}
	return TR_OK;
}

/* ---------------------------------------------------------------- inbound events */

static void mx_publish(struct matrix *m, const json_t *ev, const char *room_id)
{
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *room = json_string_value(json_object_get(ev, "room_id"));
	if (!room)
		room = room_id;
	if (!type || !room)
		return;
	const json_t *content = json_object_get(ev, "content");
	const char *sender = json_string_value(json_object_get(ev, "sender"));
	const char *state_key = json_string_value(json_object_get(ev, "state_key"));
	if (strcmp(type, "m.room.member") == 0 && state_key) {
		const char *dn = json_string_value(json_object_get(content, "displayname"));
		char *k = mx_key2(room, state_key);
		mx_map_set(&m->names, k, dn);
		free(k);
		const char *mem = json_string_value(json_object_get(content, "membership"));
		/* Invited into a room of the channels list: join it. */
		if (mem && strcmp(mem, "invite") == 0 && strcmp(state_key, m->user_id) == 0 &&
		    mx_in_channels(m, room)) {
			free(tr_map_del(&m->room_check, room, strlen(room)));
			const char *ids[1] = {room};
			(void)matrix_set_channels(m->c, ids, 1);
		}
	} else if (strcmp(type, "m.room.encryption") == 0 && state_key) {
		mx_mark_encrypted(m, room);
		if (mx_in_channels(m, room)) {
			/* Tell the room once, through the queue (the bot posts the notice). */
			free(tr_map_del(&m->room_check, room, strlen(room)));
			const char *ids[1] = {room};
			(void)matrix_set_channels(m->c, ids, 1);
		}
		return;
	} else if (strcmp(type, "m.room.encrypted") == 0) {
		tr_warn("encrypted event in room %s not bridged", room);
		return;
	}
	struct matrix_map_ctx ctx = mx_ctx(m);
	struct tr_event out;
	int rc = matrix_map_event(ev, room, &ctx, &out);
	if (rc != TR_OK) {
		if (rc == TR_E_INVAL)
			tr_warn("malformed %s event from %s dropped", type, tr_str(sender));
		return;
	}
	const char *eid = json_string_value(json_object_get(ev, "event_id"));
	if (out.type == TR_EV_REACTION) {
		char *k = mx_key2("in", eid);
		char *v = mx_key2(out.target, out.reaction);
		mx_map_set(&m->reactions, k, v);
		free(k);
		free(v);
	} else if (out.type == TR_EV_DELETE) {
		/* A redacted reaction is a reaction withdrawn, not a message deleted. */
		char *k = mx_key2("in", out.target);
		const char *v = mx_map_get(&m->reactions, k);
		free(k);
		const char *sep = v ? strchr(v, '\x1f') : NULL;
		if (sep) {
			char *target = tr_xstrndup(v, (size_t)(sep - v));
			free(out.target);
			out.target = target;
			out.reaction = tr_xstrdup(sep + 1);
			out.removed = true;
			out.type = TR_EV_REACTION;
			out.msgid = tr_xstrdup(eid);
		}
	}
	if (tr_conn_publish(m->c, &out) != TR_OK)
		tr_warn("event %s not published", tr_str(eid));
	tr_event_cleanup(&out);
}

/* ---------------------------------------------------------------- appservice API */

static bool mx_txn_seen(struct matrix *m, const char *txn)
{
	for (size_t i = 0; i < m->n_txns; i++)
		if (m->txns[i] && strcmp(m->txns[i], txn) == 0)
			return true;
	return false;
}

static void mx_txn_add(struct matrix *m, const char *txn)
{
	free(m->txns[m->txn_next]);
	m->txns[m->txn_next] = tr_xstrdup(txn);
	m->txn_next = (m->txn_next + 1) % MATRIX_TXN_KEEP;
	if (m->n_txns < MATRIX_TXN_KEEP)
		m->n_txns++;
}

static int mx_txn_save(struct matrix *m)
{
	struct tr_buf b;
	tr_buf_init(&b, 1024 * 1024);
	int rc = TR_OK;
	/* Oldest first, so that a load keeps the order of the ring. */
	for (size_t i = 0; i < m->n_txns && rc == TR_OK; i++) {
		size_t idx = (m->txn_next + MATRIX_TXN_KEEP - m->n_txns + i) % MATRIX_TXN_KEEP;
		rc = tr_buf_printf(&b, "%s\n", m->txns[idx]);
	}
	if (rc == TR_OK)
		rc = tr_conn_state_write(m->c, "as-txns", b.data ? b.data : "", b.len);
	tr_buf_cleanup(&b);
	return rc;
}

static void mx_txn_load(struct matrix *m)
{
	char *data = NULL;
	size_t len = 0;
	if (tr_conn_state_read(m->c, "as-txns", &data, &len) != TR_OK)
		return;
	char *p = data;
	while (p && *p) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		if (*p && !mx_txn_seen(m, p))
			mx_txn_add(m, p);
		p = nl ? nl + 1 : NULL;
	}
	free(data);
}

struct mx_txn_wait {
	struct matrix *m;
	char *txn;
	uint64_t req;
};

static void mx_txn_published(struct tr_conn *c, void *arg)
{
	(void)c;
	struct mx_txn_wait *w = arg;
	struct matrix *m = w->m;
	if (!mx_txn_seen(m, w->txn)) {
		mx_txn_add(m, w->txn);
		/* Saved before answering: a copy sent after a crash is then answered at once. */
		if (mx_txn_save(m) != TR_OK)
			tr_warn("cannot save transaction ids");
	}
	if (m->asd)
		matrix_asd_reply(m->asd, w->req, 200, "{}");
	free(w->txn);
	free(w);
}

static bool mx_hs_auth(struct matrix *m, const char *authz, const char *query)
{
	const char *tok = NULL;
	char qtok[512] = "";
	if (authz && strncmp(authz, "Bearer ", 7) == 0) {
		tok = authz + 7;
	} else if (query) {
		/* Older homeservers send ?access_token= (deprecated in v1.4). */
		const char *p = strstr(query, "access_token=");
		if (p && (p == query || p[-1] == '&')) {
			p += 13;
			size_t n = strcspn(p, "&");
			if (n < sizeof(qtok)) {
				memcpy(qtok, p, n);
				qtok[n] = '\0';
				tok = qtok;
			}
		}
	}
	if (!tok)
		return false;
	size_t a = strlen(tok), b = strlen(m->cfg.hs_token);
	unsigned char diff = (unsigned char)(a != b);
	for (size_t i = 0; i < a && i < b; i++)
		diff |= (unsigned char)(tok[i] ^ m->cfg.hs_token[i]);
	return diff == 0;
}

static int mx_asd_handle(void *arg, const char *method, const char *path, const char *query,
                         const char *authz, const char *body, size_t len, struct tr_buf *resp)
{
	struct matrix *m = arg;
	int rc = TR_OK;
	if (!authz && !strstr(query, "access_token=")) {
		rc =
		    tr_buf_appends(resp, "{\"errcode\":\"M_UNAUTHORIZED\",\"error\":\"no token\"}");
		return 401;
	}
	if (!mx_hs_auth(m, authz, query)) {
		rc = tr_buf_appends(resp, "{\"errcode\":\"M_FORBIDDEN\",\"error\":\"bad token\"}");
		return 403;
	}
	static const char txp[] = "/_matrix/app/v1/transactions/";
	if (strcmp(method, "PUT") == 0 && strncmp(path, txp, sizeof(txp) - 1) == 0) {
		const char *txn = path + sizeof(txp) - 1;
		if (!*txn || strchr(txn, '/'))
			return 404;
		if (mx_txn_seen(m, txn)) {
			tr_debug("transaction %s already handled", txn);
			return 200;
		}
		json_t *j = json_loadb(body, len, 0, NULL);
		json_t *evs = json_object_get(j, "events");
		if (!json_is_array(evs)) {
			json_decref(j);
			rc = tr_buf_appends(resp,
			                    "{\"errcode\":\"M_NOT_JSON\",\"error\":\"bad body\"}");
			return 400;
		}
		size_t i;
		json_t *ev;
		json_array_foreach(evs, i, ev)
		{
			if (json_is_object(ev))
				mx_publish(m, ev, NULL);
		}
		size_t n_events = json_array_size(evs);
		json_decref(j);
		/* Answered only once the broker holds every event of the transaction: until the
		 * homeserver has its 200 it sends the transaction again, so a crash in between
		 * loses nothing (the router drops the copies by event id). */
		struct mx_txn_wait *w = tr_xcalloc(1, sizeof(*w));
		w->m = m;
		w->txn = tr_xstrdup(txn);
		w->req = matrix_asd_defer(m->asd);
		tr_conn_when_published(m->c, mx_txn_published, w);
		tr_debug("transaction %s handled events=%zu", txn, n_events);
		return 200;
	}
	if (strcmp(method, "POST") == 0 && strcmp(path, "/_matrix/app/v1/ping") == 0)
		return 200;
	static const char up[] = "/_matrix/app/v1/users/";
	if (strcmp(method, "GET") == 0 && strncmp(path, up, sizeof(up) - 1) == 0) {
		/* Only puppets this instance created exist; others are not ours to create. */
		char *uid = tr_xstrdup(path + sizeof(up) - 1);
		/* %40 and %3A are the only escapes a user id path needs. */
		char *p;
		struct tr_buf d;
		tr_buf_init(&d, 512);
		for (p = uid; *p && rc == TR_OK; p++) {
			if (p[0] == '%' && p[1] && p[2]) {
				char hex[3] = {p[1], p[2], 0};
				char ch = (char)strtol(hex, NULL, 16);
				rc = tr_buf_append(&d, &ch, 1);
				p += 2;
			} else {
				rc = tr_buf_append(&d, p, 1);
			}
		}
		free(uid);
		bool known = rc == TR_OK && mx_map_get(&m->registered, tr_buf_str(&d));
		tr_buf_cleanup(&d);
		if (known)
			return 200;
		rc = tr_buf_appends(resp,
		                    "{\"errcode\":\"M_NOT_FOUND\",\"error\":\"unknown user\"}");
		return 404;
	}
	if (strcmp(method, "GET") == 0 && strncmp(path, "/_matrix/app/v1/rooms/", 22) == 0) {
		rc = tr_buf_appends(resp,
		                    "{\"errcode\":\"M_NOT_FOUND\",\"error\":\"no such room\"}");
		return 404;
	}
	(void)rc;
	if (tr_buf_appends(resp, "{\"errcode\":\"M_UNRECOGNIZED\",\"error\":\"unrecognized\"}") !=
	    TR_OK)
		return 500;
	return 404;
}

/* ---------------------------------------------------------------- bot mode: /sync */

static void mx_sync_start(struct matrix *m, unsigned delay_ms);

static void mx_sync_timer(uv_timer_t *t)
{
	struct matrix *m = t->data;
	mx_sync_start(m, 0);
}

static void mx_sync_rooms(struct matrix *m, json_t *rooms, bool initial)
{
	const char *room;
	json_t *r;
	json_object_foreach(json_object_get(rooms, "join"), room, r)
	{
		size_t i;
		json_t *ev;
		json_array_foreach(json_object_get(json_object_get(r, "state"), "events"), i, ev)
		{
			const char *type = json_string_value(json_object_get(ev, "type"));
			const char *sk = json_string_value(json_object_get(ev, "state_key"));
			if (type && sk && strcmp(type, "m.room.member") == 0) {
				char *k = mx_key2(room, sk);
				mx_map_set(&m->names, k,
				           json_string_value(json_object_get(
				               json_object_get(ev, "content"), "displayname")));
				free(k);
			} else if (type && sk && strcmp(type, "m.room.encryption") == 0) {
				mx_mark_encrypted(m, room);
			}
		}
		json_array_foreach(json_object_get(json_object_get(r, "timeline"), "events"), i, ev)
		{
			const char *type = json_string_value(json_object_get(ev, "type"));
			if (initial) {
				/* History before the first start is not bridged; state is learnt.
				 */
				if (type && strcmp(type, "m.room.encryption") == 0)
					mx_mark_encrypted(m, room);
				continue;
			}
			mx_publish(m, ev, room);
		}
	}
	json_object_foreach(json_object_get(rooms, "invite"), room, r)
	{
		if (mx_in_channels(m, room)) {
			free(tr_map_del(&m->room_check, room, strlen(room)));
			const char *ids[1] = {room};
			(void)matrix_set_channels(m->c, ids, 1);
		}
	}
}

static void mx_since_published(struct tr_conn *c, void *arg)
{
	char *since = arg;
	if (tr_conn_state_write(c, "since", since, strlen(since)) != TR_OK)
		tr_warn("cannot save the sync token");
	free(since);
}

static void mx_sync_done(void *arg, const struct tr_http_resp *r)
{
	struct matrix *m = arg;
	m->sync_call = NULL;
	if (r->err == TR_OK && r->status == 401) {
		tr_conn_lost(m->c, TR_E_AUTH, "access token refused");
		return;
	}
	json_t *j = NULL;
	const char *next = NULL;
	if (r->err == TR_OK && r->status == 200) {
		j = json_loadb(r->body, r->len, 0, NULL);
		next = json_string_value(json_object_get(j, "next_batch"));
	}
	if (!next) {
		json_decref(j);
		unsigned d = r->err == TR_E_RATELIMIT
		                 ? (unsigned)mx_retry_ms(r)
		                 : 500u << (m->sync_failures < 6 ? m->sync_failures : 6);
		m->sync_failures++;
		tr_warn("sync failed status=%ld err=%s: retry in %u ms", r->status,
		        tr_strerror(r->err), d);
		mx_sync_start(m, d);
		return;
	}
	m->sync_failures = 0;
	bool initial = m->since == NULL;
	mx_sync_rooms(m, json_object_get(j, "rooms"), initial);
	free(m->since);
	m->since = tr_xstrdup(next);
	/* Saved once the broker holds the events it covers: a crash before that syncs them again
	 * (same ids, which the router drops); nothing is lost. */
	tr_conn_when_published(m->c, mx_since_published, tr_xstrdup(next));
	json_decref(j);
	mx_sync_start(m, 0);
}

static void mx_sync_start(struct matrix *m, unsigned delay_ms)
{
	if (!m->online || m->sync_call)
		return;
	if (delay_ms) {
		uv_timer_start(&m->sync_timer, mx_sync_timer, delay_ms, 0);
		return;
	}
	char *q = NULL;
	const char *filter = "%7B%22room%22%3A%7B%22timeline%22%3A%7B%22limit%22%3A100%7D%7D%7D";
	if (m->since) {
		char *s = tr_http_escape(m->since);
		q = tr_xasprintf("timeout=%d&filter=%s&since=%s", MX_SYNC_TIMEOUT_MS, filter, s);
		free(s);
	} else {
		q = tr_xasprintf("timeout=0&filter=%s", filter);
	}
	int rc = mx_request(m, "GET", mx_url(m, NULL, q, "/_matrix/client/v3/sync", NULL), NULL,
	                    NULL, NULL, MX_SYNC_TIMEOUT_MS + 15000, 32 * 1024 * 1024, true,
	                    mx_sync_done, m, &m->sync_call);
	free(q);
	if (rc != TR_OK) {
		m->sync_call = NULL;
		tr_conn_lost(m->c, rc, "sync request not started");
	}
}

/* ---------------------------------------------------------------- lifecycle */

static void mx_whoami_done(void *arg, const struct tr_http_resp *r)
{
	struct matrix *m = arg;
	m->sync_call = NULL;
	if (r->err != TR_OK || r->status != 200) {
		char code[64];
		int err = r->err != TR_OK ? r->err : tr_http_status_err(r->status);
		tr_conn_lost(m->c, err == TR_E_FORBIDDEN ? TR_E_AUTH : err,
		             r->err != TR_OK ? "homeserver unreachable"
		                             : mx_errcode(r, code, sizeof(code)));
		return;
	}
	char *uid = mx_resp_str(r, "user_id");
	if (!uid) {
		tr_conn_lost(m->c, TR_E_PROTO, "whoami without user_id");
		return;
	}
	free(m->user_id);
	m->user_id = uid;
	m->online = true;
	char *detail =
	    tr_xasprintf("connected as %s (%s)", uid, m->cfg.appservice ? "appservice" : "bot");
	tr_conn_online(m->c, detail);
	free(detail);
	size_t n = 0;
	const char *const *ch = tr_conn_channels(m->c, &n);
	for (size_t i = 0; ch && i < n; i++)
		if (mx_room_encrypted(m, ch[i]))
			tr_conn_degraded(m->c, "encrypted rooms are not bridged");
	if (!m->cfg.appservice) {
		free(m->since);
		m->since = NULL;
		size_t len = 0;
		char *s = NULL;
		if (tr_conn_state_read(m->c, "since", &s, &len) == TR_OK && len)
			m->since = s;
		else
			free(s);
		mx_sync_start(m, 0);
	}
	mx_run(m);
}

static int matrix_connect(struct tr_conn *c)
{
	struct matrix *m = mx_of(c);
	if (!m->timer_init) {
		uv_timer_init(tr_conn_loop(c), &m->timer);
		uv_timer_init(tr_conn_loop(c), &m->sync_timer);
		m->timer.data = m;
		m->sync_timer.data = m;
		m->timer_init = true;
	}
	if (!m->http)
		m->http = tr_http_new(tr_conn_loop(c));
	if (m->cfg.appservice && !m->asd) {
		char err[TR_ERR_LEN];
		if (m->n_txns == 0)
			mx_txn_load(m);
		m->asd = matrix_asd_start(tr_conn_loop(c), m->cfg.as_listen, mx_asd_handle, m, err);
		if (!m->asd) {
			tr_error("cannot listen on MATRIX_AS_LISTEN: %s", err);
			return TR_E_IO;
		}
	}
	return mx_request(m, "GET",
	                  mx_url(m, m->user_id, NULL, "/_matrix/client/v3/account/whoami", NULL),
	                  NULL, NULL, NULL, 15000, 0, true, mx_whoami_done, m, &m->sync_call);
}

static void matrix_disconnect(struct tr_conn *c)
{
	struct matrix *m = mx_of(c);
	m->online = false;
	if (m->sync_call) {
		tr_http_cancel(m->sync_call);
		m->sync_call = NULL;
	}
	if (m->call) {
		tr_http_cancel(m->call);
		m->call = NULL;
	}
	if (m->timer_init) {
		uv_timer_stop(&m->timer);
		uv_timer_stop(&m->sync_timer);
	}
	/* The listener closes too (the loop must be able to end); the homeserver retries its
	 * transaction with the same txnId until connect() listens again. Deliveries in the
	 * queue resume from their current step once connected again. */
	matrix_asd_close(m->asd);
	m->asd = NULL;
}

static void mx_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void matrix_release(struct tr_conn *c)
{
	struct matrix *m = mx_of(c);
	while (m->jobs) {
		struct matrix_job *j = m->jobs;
		m->jobs = j->next;
		mx_job_free(j);
	}
	matrix_asd_close(m->asd);
	m->asd = NULL;
	if (m->http)
		tr_http_free(m->http);
	m->http = NULL;
	if (m->timer_init) {
		uv_close((uv_handle_t *)&m->timer, mx_timer_closed);
		uv_close((uv_handle_t *)&m->sync_timer, mx_timer_closed);
	}
	uv_run(tr_conn_loop(c), UV_RUN_NOWAIT);
	mx_map_free(&m->registered);
	mx_map_free(&m->profile);
	mx_map_free(&m->avatars);
	mx_map_free(&m->joined);
	mx_map_free(&m->names);
	mx_map_free(&m->encrypted);
	mx_map_free(&m->room_check);
	mx_map_free(&m->reactions);
	for (size_t i = 0; i < MATRIX_TXN_KEEP; i++)
		free(m->txns[i]);
	free(m->since);
	free(m->user_id);
	free(m->status_detail);
	mx_cfg_free(&m->cfg);
}

const struct tr_connector matrix_connector = {
    .network = "matrix",
    .state_size = sizeof(struct matrix),
    .caps = TR_CAP_EDIT | TR_CAP_DELETE | TR_CAP_REACT | TR_CAP_REPLY | TR_CAP_THREAD |
            TR_CAP_PUPPET | TR_CAP_ATTACH,
    .configure = matrix_configure,
    .connect = matrix_connect,
    .deliver = matrix_deliver,
    .set_channels = matrix_set_channels,
    .disconnect = matrix_disconnect,
    .release = matrix_release,
};

/* `trestle-matrix registration`: a registration YAML with fresh random tokens (or the ones in
 * MATRIX_AS_TOKEN / MATRIX_HS_TOKEN when set). */
int matrix_registration_main(void)
{
	struct tr_env env;
	struct matrix_cfg cfg = {0};
	tr_env_init(&env, NULL);
	mx_cfg_read(&env, &cfg, true);
	int code = TR_EXIT_CONFIG;
	char *yaml = NULL;
	char tokens[2][65];
	if (tr_env_finish(&env) != TR_OK)
		goto out;
	for (int t = 0; t < 2; t++) {
		unsigned char raw[32];
		if (uv_random(NULL, NULL, raw, sizeof(raw), 0, NULL) != 0)
			goto out;
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(&tokens[t][i * 2], 3, "%02x", raw[i]);
	}
	yaml = matrix_registration_yaml(&cfg, cfg.as_token ? cfg.as_token : tokens[0],
	                                cfg.hs_token ? cfg.hs_token : tokens[1]);
	fputs(yaml, stdout);
	code = TR_EXIT_OK;
out:
	free(yaml);
	mx_cfg_free(&cfg);
	tr_env_cleanup(&env);
	return code;
}
