/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-slack: Socket Mode in (apps.connections.open, hello, envelopes acked at once, a new
 * connection opened before the old one closes on `disconnect`), Web API out (chat.postMessage
 * with username/icon_url, chat.update, chat.delete, reactions.*) through one ordered queue per
 * channel that obeys per-method buckets and 429/Retry-After. Names resolved with users.info /
 * conversations.info into bounded caches. Shapes: ../shared/specs/slack/, NETWORKS.md §1. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"
#include "format.h"
#include "http.h"
#include "log.h"
#include "slack.h"
#include "ws.h"

#define SLACK_MAX_TEXT     39000 /* bytes; Slack cuts messages at 40,000 characters */
#define SLACK_CACHE_MAX    5000
#define SLACK_IN_MAX       10000
#define SLACK_MAX_ATTEMPTS 5
#define SLACK_FORM_MAX     (1024 * 1024)
#define SLACK_MAX_FILE     (20 * 1024 * 1024) /* attachments bigger than this go as links */

static const char *js(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool slack_has_scope(const char *list, const char *scope)
{
	size_t n = strlen(scope);
	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");
		if (len == n && memcmp(p, scope, n) == 0)
			return true;
		p += len;
		while (*p == ',' || *p == ' ')
			p++;
	}
	return false;
}

/* ---------------------------------------------------------------- settings */

static int slack_configure(struct tr_conn *c, struct tr_env *env)
{
	struct slack *s = tr_conn_state(c);
	s->c = c;
	tr_map_init(&s->people);
	tr_map_init(&s->chan_names);
	tr_map_init(&s->chans);
	s->app_token = tr_env_required(env, "SLACK_APP_TOKEN");
	s->bot_token = tr_env_required(env, "SLACK_BOT_TOKEN");
	char *url = tr_env_str(env, "SLACK_API_URL", "https://slack.com/api/");
	if (s->app_token && strncmp(s->app_token, "xapp-", 5) != 0)
		tr_env_fail(env, "SLACK_APP_TOKEN",
		            "must be an app-level token (xapp-…) with scope connections:write%s",
		            strncmp(s->app_token, "xox", 3) == 0
		                ? "; a bot or user token (xox…) was given: create one under Basic "
		                  "Information > App-Level Tokens"
		                : "");
	if (s->bot_token && strncmp(s->bot_token, "xoxb-", 5) != 0)
		tr_env_fail(env, "SLACK_BOT_TOKEN", "must be the Bot User OAuth Token (xoxb-…)%s",
		            strncmp(s->bot_token, "xoxp-", 5) == 0
		                ? "; a user token (xoxp-) was given"
		            : strncmp(s->bot_token, "xapp-", 5) == 0
		                ? "; the app-level token (xapp-) was given"
		                : "");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		tr_env_fail(env, "SLACK_API_URL", "must be an http:// or https:// URL");
	size_t n = strlen(url);
	s->api_url = n && url[n - 1] == '/' ? tr_xstrdup(url) : tr_xasprintf("%s/", url);
	free(url);
	return TR_OK;
}

/* ---------------------------------------------------------------- Web API calls */

static void slack_http_done(void *arg, const struct tr_http_resp *resp)
{
	struct slack_op *op = arg;
	op->call = NULL;
	const char *sc = resp->call ? tr_http_header(resp->call, "x-oauth-scopes") : NULL;
	snprintf(op->scopes, sizeof(op->scopes), "%s", sc ? sc : "");
	json_t *body = NULL;
	const char *error = NULL;
	int err = resp->err;
	double ra = resp->retry_after_s;
	if (err == TR_E_RATELIMIT) {
		error = "ratelimited";
	} else if (err == TR_OK) {
		body = json_loadb(resp->body, resp->len, 0, NULL);
		if (!json_is_object(body)) {
			err = resp->status >= 500 ? TR_E_AGAIN : TR_E_PROTO;
		} else if (!json_is_true(json_object_get(body, "ok"))) {
			error = js(body, "error");
			if (!error)
				error = "unknown_error";
			err = slack_error_to_tr(error);
		}
	}
	/* ok:false "ratelimited" may come without a Retry-After: wait a second. */
	if (err == TR_E_RATELIMIT && ra < 0)
		ra = 1;
	op->fn(op, err, body, error, ra);
	json_decref(body);
}

/* POSTs a form (kv: name, value pairs, NULL-terminated; NULL values skipped) to method. */
static int slack_api(struct slack *s, struct slack_op *op, const char *method, const char *token,
                     const char *const *kv, slack_op_fn *fn)
{
	struct tr_buf body;
	tr_buf_init(&body, SLACK_FORM_MAX);
	int rc = TR_OK;
	for (size_t i = 0; kv && kv[i]; i += 2) {
		if (!kv[i + 1])
			continue;
		char *e = tr_http_escape(kv[i + 1]);
		rc = tr_buf_printf(&body, "%s%s=%s", body.len ? "&" : "", kv[i], e);
		free(e);
		if (rc != TR_OK)
			goto out;
	}
	char *url = tr_xasprintf("%s%s", s->api_url, method);
	char *auth = tr_xasprintf("Authorization: Bearer %s", token);
	const char *headers[] = {auth, "Content-Type: application/x-www-form-urlencoded"};
	struct tr_http_req req = {.method = "POST",
	                          .url = url,
	                          .headers = headers,
	                          .n_headers = 2,
	                          .body = tr_buf_str(&body),
	                          .body_len = body.len,
	                          .timeout_ms = 15000,
	                          .max_response = 4 * 1024 * 1024};
	op->s = s;
	op->fn = fn;
	rc = tr_http_request(s->http, &req, slack_http_done, op, &op->call);
	free(url);
	free(auth);
out:
	tr_buf_cleanup(&body);
	return rc;
}

static void slack_raw_done(void *arg, const struct tr_http_resp *resp)
{
	struct slack_op *op = arg;
	op->call = NULL;
	op->raw(op, resp->err, resp->status, resp->body, resp->len);
}

/* A request outside the Web API (an attachment's source, Slack's upload URL). */
static int slack_raw(struct slack *s, struct slack_op *op, const char *method, const char *url,
                     const void *body, size_t len, slack_raw_fn *fn)
{
	const char *headers[] = {"Content-Type: application/octet-stream"};
	struct tr_http_req req = {.method = method,
	                          .url = url,
	                          .headers = body ? headers : NULL,
	                          .n_headers = body ? 1 : 0,
	                          .body = body,
	                          .body_len = len,
	                          .timeout_ms = 60000,
	                          .max_response = SLACK_MAX_FILE};
	op->s = s;
	op->raw = fn;
	return tr_http_request(s->http, &req, slack_raw_done, op, &op->call);
}

static void slack_op_cancel(struct slack_op *op)
{
	if (op->call) {
		tr_http_cancel(op->call);
		op->call = NULL;
	}
}

/* ---------------------------------------------------------------- names */

static void slack_cache_bound(struct tr_map *m, bool people)
{
	if (m->len < SLACK_CACHE_MAX)
		return;
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(m, &i, &k, &kl, &v);) {
		if (people) {
			struct slack_person *p = v;
			free(p->name);
			free(p->display);
			free(p->avatar);
		}
		free(v);
	}
	tr_map_cleanup(m);
	tr_map_init(m);
}

static const struct slack_person *slack_person_get(void *arg, const char *id)
{
	struct slack *s = arg;
	const struct slack_person *p = tr_map_get(&s->people, id, strlen(id));
	return p && p->name ? p : NULL;
}

static const char *slack_name_get(void *arg, const char *id)
{
	struct slack *s = arg;
	if (id[0] == 'C' || id[0] == 'G') {
		const char *n = tr_map_get(&s->chan_names, id, strlen(id));
		return n && *n ? n : NULL;
	}
	const struct slack_person *p = slack_person_get(arg, id);
	if (!p)
		return NULL;
	return p->display ? p->display : p->name;
}

/* ---------------------------------------------------------------- inbound */

static bool slack_channel_wanted(struct slack *s, const char *id)
{
	size_t n = 0;
	const char *const *ids = tr_conn_channels(s->c, &n);
	for (size_t i = 0; i < n; i++)
		if (strcmp(ids[i], id) == 0)
			return true;
	return false;
}

static void slack_publish(struct slack *s, const json_t *e)
{
	struct slack_self self = {
	    .user_id = s->self_user, .bot_id = s->self_bot, .app_id = s->self_app};
	struct tr_event ev;
	int rc =
	    slack_map_event(tr_conn_name(s->c), e, &self, slack_person_get, slack_name_get, s, &ev);
	if (rc == TR_E_NOTFOUND)
		return;
	if (rc != TR_OK) {
		tr_warn("slack: malformed event dropped type=%s", tr_str(js(e, "type")));
		return;
	}
	if (!slack_channel_wanted(s, ev.channel)) {
		tr_debug("slack: event from an unbridged channel channel=%s", ev.channel);
	} else if (tr_conn_publish(s->c, &ev) != TR_OK) {
		tr_warn("slack: event not published id=%s", ev.id);
	}
	tr_event_cleanup(&ev);
}

static void slack_on_lookup(struct slack_op *op, int err, json_t *body, const char *error,
                            double ra);
static void slack_in_run(struct slack *s);

static void slack_lookup_start(struct slack *s, const char *id)
{
	bool user = id[0] != 'C' && id[0] != 'G';
	const char *kv[] = {user ? "user" : "channel", id, NULL};
	s->lookup_id = tr_xstrdup(id);
	if (slack_api(s, &s->lookup, user ? "users.info" : "conversations.info", s->bot_token, kv,
	              slack_on_lookup) != TR_OK) {
		/* Remember the failure so the event goes out with the id as its name. */
		slack_on_lookup(&s->lookup, TR_E_IO, NULL, NULL, -1);
	}
}

static void slack_on_lookup(struct slack_op *op, int err, json_t *body, const char *error,
                            double ra)
{
	(void)ra;
	struct slack *s = op->s;
	char *id = s->lookup_id;
	s->lookup_id = NULL;
	if (err != TR_OK)
		tr_debug("slack: lookup failed id=%s error=%s", id, tr_str(error));
	if (id[0] == 'C' || id[0] == 'G') {
		slack_cache_bound(&s->chan_names, false);
		const char *name =
		    err == TR_OK ? js(json_object_get(body, "channel"), "name") : NULL;
		free(tr_map_put(&s->chan_names, id, strlen(id), tr_xstrdup(name ? name : "")));
	} else {
		slack_cache_bound(&s->people, true);
		struct slack_person *p = tr_xcalloc(1, sizeof(*p));
		const json_t *u = json_object_get(body, "user");
		const json_t *prof = json_object_get(u, "profile");
		if (err == TR_OK && u) {
			p->name = tr_xstrdup(js(u, "name") ? js(u, "name") : id);
			const char *d = js(prof, "display_name");
			if (!d || !*d)
				d = js(prof, "real_name");
			if (!d || !*d)
				d = js(u, "real_name");
			p->display = d && *d ? tr_xstrdup(d) : NULL;
			const char *img = js(prof, "image_192");
			if (!img)
				img = js(prof, "image_72");
			p->avatar = tr_xstrdup(img);
		}
		struct slack_person *old = tr_map_put(&s->people, id, strlen(id), p);
		if (old) {
			free(old->name);
			free(old->display);
			free(old->avatar);
			free(old);
		}
	}
	free(id);
	slack_in_run(s);
}

/* Publishes queued events in order, pausing for one name lookup at a time. */
static void slack_in_run(struct slack *s)
{
	while (s->in_head && !s->lookup.call && !s->lookup_id) {
		struct slack_in *in = s->in_head;
		char **ids = NULL;
		size_t n = 0;
		slack_event_ids(in->event, &ids, &n);
		const char *missing = NULL;
		for (size_t i = 0; i < n && !missing; i++) {
			bool chan = ids[i][0] == 'C' || ids[i][0] == 'G';
			struct tr_map *m = chan ? &s->chan_names : &s->people;
			if (!tr_map_get(m, ids[i], strlen(ids[i])))
				missing = ids[i];
		}
		if (missing) {
			slack_lookup_start(s, missing);
			slack_ids_free(ids, n);
			continue;
		}
		slack_ids_free(ids, n);
		s->in_head = in->next;
		if (!s->in_head)
			s->in_tail = NULL;
		s->in_len--;
		slack_publish(s, in->event);
		json_decref(in->event);
		free(in);
	}
}

static void slack_in_push(struct slack *s, json_t *event)
{
	if (s->in_len >= SLACK_IN_MAX) {
		tr_warn("slack: inbound queue full, event dropped");
		return;
	}
	struct slack_in *in = tr_xcalloc(1, sizeof(*in));
	in->event = json_incref(event);
	if (s->in_tail)
		s->in_tail->next = in;
	else
		s->in_head = in;
	s->in_tail = in;
	s->in_len++;
	slack_in_run(s);
}

/* ---------------------------------------------------------------- outbound */

static void slack_chan_kick(struct slack_chan *ch);
static void slack_check_next(struct slack *s);

static void slack_chan_timer(uv_timer_t *t)
{
	slack_chan_kick(t->data);
}

static struct slack_chan *slack_chan_get(struct slack *s, const char *id)
{
	struct slack_chan *ch = tr_map_get(&s->chans, id, strlen(id));
	if (ch)
		return ch;
	ch = tr_xcalloc(1, sizeof(*ch));
	ch->s = s;
	ch->id = tr_xstrdup(id);
	uv_timer_init(tr_conn_loop(s->c), &ch->timer);
	ch->timer.data = ch;
	tr_map_put(&s->chans, id, strlen(id), ch);
	return ch;
}

static void slack_job_pop(struct slack_chan *ch)
{
	struct slack_job *j = ch->head;
	ch->head = j->next;
	if (!ch->head)
		ch->tail = NULL;
	tr_event_cleanup(&j->ev);
	free(j->data);
	free(j->upload_url);
	free(j->file_id);
	json_decref(j->files);
	free(j->ts);
	free(j);
}

/* The Web API method the job's next step calls ("" for a plain HTTP step), NULL when there is
 * nothing to post. */
static const char *slack_job_method(const struct slack_job *j)
{
	const struct tr_event *ev = &j->ev;
	switch (ev->type) {
	case TR_EV_MESSAGE:
		if (j->step == SLACK_STEP_URL)
			return "files.getUploadURLExternal";
		if (j->step == SLACK_STEP_COMPLETE)
			return "files.completeUploadExternal";
		if (j->step != SLACK_STEP_MAIN)
			return "";
		return "chat.postMessage";
	case TR_EV_EDIT:
		return "chat.update";
	case TR_EV_DELETE:
		return "chat.delete";
	case TR_EV_REACTION:
		return ev->removed ? "reactions.remove" : "reactions.add";
	default:
		return NULL; /* joins, leaves, topics are not posted into Slack */
	}
}

/* The message text in mrkdwn: the bridged text, then links to the attachments not uploaded. */
static char *slack_job_text(const struct tr_event *ev, const bool *linked)
{
	char *mk = NULL;
	if (ev->text && tr_mrkdwn_from_commonmark(ev->text, strlen(ev->text), &mk) != TR_OK)
		mk = NULL;
	struct tr_buf b;
	tr_buf_init(&b, SLACK_FORM_MAX);
	if (mk && tr_buf_appends(&b, mk) != TR_OK)
		tr_buf_reset(&b);
	for (size_t i = 0; i < ev->n_attachments; i++) {
		const struct tr_attachment *a = &ev->attachments[i];
		if (linked && !linked[i])
			continue;
		char *md = tr_xasprintf("[%s](%s)", a->name ? a->name : a->url, a->url);
		char *link = NULL;
		if (tr_mrkdwn_from_commonmark(md, strlen(md), &link) == TR_OK &&
		    tr_buf_printf(&b, "%s%s", b.len ? "\n" : "", link) != TR_OK)
			tr_warn("slack: attachment link dropped (text too long)");
		free(link);
		free(md);
	}
	free(mk);
	char *text = tr_format_truncate(tr_buf_str(&b), b.len, SLACK_MAX_TEXT, 0, TR_DIALECT_PLAIN);
	tr_buf_cleanup(&b);
	return text;
}

static void slack_on_job(struct slack_op *op, int err, json_t *body, const char *error, double ra);

/* Starts the head job's call; TR_OK, or an error to ack it with now. */
static void slack_on_raw(struct slack_op *op, int err, long status, const char *body, size_t len);

/* The upload steps of the head job; TR_OK when a request started. */
static int slack_job_upload_step(struct slack_chan *ch, struct slack_job *j)
{
	struct slack *s = ch->s;
	const struct tr_attachment *a = &j->ev.attachments[j->att];
	if (j->step == SLACK_STEP_FETCH) {
		if (strncmp(a->url, "https://", 8) != 0 && strncmp(a->url, "http://", 7) != 0)
			return TR_E_INVAL;
		return slack_raw(s, &ch->op, "GET", a->url, NULL, 0, slack_on_raw);
	}
	if (j->step == SLACK_STEP_UPLOAD)
		return slack_raw(s, &ch->op, "POST", j->upload_url, j->data, j->data_len,
		                 slack_on_raw);
	char len[24];
	snprintf(len, sizeof(len), "%zu", j->data_len);
	const char *kv[] = {"filename", a->name ? a->name : "file", "length", len, NULL};
	return slack_api(s, &ch->op, "files.getUploadURLExternal", s->bot_token, kv, slack_on_job);
}

/* The next attachment, or the message itself once every attachment had its turn. */
static void slack_job_next_attachment(struct slack_job *j, bool link)
{
	if (link)
		j->linked[j->att] = true;
	free(j->data);
	free(j->upload_url);
	free(j->file_id);
	j->data = j->upload_url = j->file_id = NULL;
	j->data_len = 0;
	j->att++;
	j->step = j->att < j->ev.n_attachments ? SLACK_STEP_FETCH : SLACK_STEP_MAIN;
}

static int slack_job_start(struct slack_chan *ch, struct slack_job *j, const char **detail)
{
	struct slack *s = ch->s;
	const struct tr_event *ev = &j->ev;
	const char *method = slack_job_method(j);
	const char *thread = ev->dest.thread ? ev->dest.thread : ev->dest.reply_to;
	if (ev->type == TR_EV_MESSAGE && j->step != SLACK_STEP_MAIN) {
		if (j->step == SLACK_STEP_COMPLETE) {
			char *files = json_dumps(j->files, JSON_COMPACT);
			const char *kv[] = {"files",     files,  "channel_id", ev->dest.channel,
			                    "thread_ts", thread, NULL};
			int rc = slack_api(s, &ch->op, method, s->bot_token, kv, slack_on_job);
			free(files);
			return rc;
		}
		return slack_job_upload_step(ch, j);
	}
	int rc = TR_OK;
	char *text = NULL, *name = NULL, *username = NULL;
	const char *target = ev->dest.target;
	if (ev->type != TR_EV_MESSAGE && !target) {
		*detail = "target message unknown";
		return TR_E_NOTFOUND;
	}
	if (ev->type == TR_EV_MESSAGE) {
		text = slack_job_text(ev, j->linked);
		if (!*text && j->files) {
			/* Only files: they are shared on their own. */
			j->step = SLACK_STEP_COMPLETE;
			free(text);
			return slack_job_start(ch, j, detail);
		}
		if (!*text) {
			*detail = "empty message";
			rc = TR_E_INVAL;
			goto out;
		}
		const char *who = ev->author.display ? ev->author.display : ev->author.name;
		if (!who)
			who = ev->author.id;
		/* Slack shows at most 80 characters of a username. */
		username = tr_format_truncate(who, strlen(who), 240, 80, TR_DIALECT_PLAIN);
		const char *icon = ev->author.avatar;
		if (icon && strncmp(icon, "https://", 8) != 0 && strncmp(icon, "http://", 7) != 0)
			icon = NULL;
		const char *kv[] = {"channel",
		                    ev->dest.channel,
		                    "text",
		                    text,
		                    "username",
		                    s->can_customize ? username : NULL,
		                    "icon_url",
		                    s->can_customize ? icon : NULL,
		                    "thread_ts",
		                    thread,
		                    "link_names",
		                    "false",
		                    "parse",
		                    "none",
		                    "unfurl_media",
		                    "true",
		                    NULL};
		rc = slack_api(s, &ch->op, method, s->bot_token, kv, slack_on_job);
	} else if (ev->type == TR_EV_EDIT) {
		text = slack_job_text(ev, NULL);
		const char *kv[] = {"channel",    ev->dest.channel, "ts",    target, "text", text,
		                    "link_names", "false",          "parse", "none", NULL};
		rc = slack_api(s, &ch->op, method, s->bot_token, kv, slack_on_job);
	} else if (ev->type == TR_EV_DELETE) {
		const char *kv[] = {"channel", ev->dest.channel, "ts", target, NULL};
		rc = slack_api(s, &ch->op, method, s->bot_token, kv, slack_on_job);
	} else {
		name = slack_reaction_name(ev->reaction);
		if (!name) {
			*detail = "emoji has no Slack name";
			rc = TR_E_INVAL;
			goto out;
		}
		const char *kv[] = {"channel", ev->dest.channel, "timestamp", target, "name", name,
		                    NULL};
		rc = slack_api(s, &ch->op, method, s->bot_token, kv, slack_on_job);
	}
	if (rc != TR_OK)
		*detail = "request not started";
out:
	free(text);
	free(name);
	free(username);
	return rc;
}

static void slack_chan_kick(struct slack_chan *ch)
{
	struct slack *s = ch->s;
	while (!ch->busy && ch->head && s->online) {
		struct slack_job *j = ch->head;
		const char *method = slack_job_method(j);
		if (!method) {
			tr_conn_ack(s->c, &j->ev, TR_OK, NULL);
			slack_job_pop(ch);
			continue;
		}
		if (*method) {
			size_t t = slack_tier_index(method);
			uint32_t wait =
			    slack_bucket_take(&s->buckets[t], &slack_tiers[t], tr_now_ms());
			if (wait) {
				uv_timer_start(&ch->timer, slack_chan_timer, wait, 0);
				return;
			}
		}
		const char *detail = NULL;
		ch->busy = true;
		int rc = slack_job_start(ch, j, &detail);
		if (rc != TR_OK && j->ev.type == TR_EV_MESSAGE && j->step != SLACK_STEP_MAIN &&
		    j->step != SLACK_STEP_COMPLETE) {
			/* This attachment cannot be uploaded: it goes as a link. */
			ch->busy = false;
			slack_job_next_attachment(j, true);
			continue;
		}
		if (rc != TR_OK) {
			ch->busy = false;
			tr_conn_ack(s->c, &j->ev, rc, detail);
			slack_job_pop(ch);
		}
	}
}

static void slack_on_job(struct slack_op *op, int err, json_t *body, const char *error, double ra)
{
	struct slack_chan *ch = (struct slack_chan *)((char *)op - offsetof(struct slack_chan, op));
	struct slack *s = ch->s;
	struct slack_job *j = ch->head;
	const char *method = slack_job_method(j);
	ch->busy = false;
	if (err == TR_E_RATELIMIT) {
		/* The job stays at the head of its queue, so order holds while we wait. */
		size_t t = slack_tier_index(method);
		tr_warn("slack: rate limited method=%s channel=%s retry_after=%.0f", method, ch->id,
		        ra);
		s->buckets[t].pause_until_ms = tr_now_ms() + (int64_t)(ra * 1000.0);
		slack_chan_kick(ch);
		return;
	}
	if ((err == TR_E_IO || err == TR_E_TIMEOUT || err == TR_E_AGAIN) &&
	    ++j->attempts < SLACK_MAX_ATTEMPTS) {
		tr_warn("slack: %s failed (%s), retrying channel=%s attempt=%u", method,
		        tr_strerror(err), ch->id, j->attempts);
		uv_timer_start(&ch->timer, slack_chan_timer, 1000u * j->attempts, 0);
		return;
	}
	if (j->ev.type == TR_EV_MESSAGE && j->step == SLACK_STEP_URL) {
		const char *url = js(body, "upload_url"), *id = js(body, "file_id");
		if (err == TR_OK && url && id) {
			j->upload_url = tr_xstrdup(url);
			j->file_id = tr_xstrdup(id);
			j->step = SLACK_STEP_UPLOAD;
		} else {
			tr_warn("slack: upload refused (%s), sending a link channel=%s",
			        error ? error : tr_strerror(err), ch->id);
			slack_job_next_attachment(j, true);
		}
		slack_chan_kick(ch);
		return;
	}
	if (j->ev.type == TR_EV_MESSAGE && j->step == SLACK_STEP_MAIN && err == TR_OK && j->files) {
		const char *ts = js(body, "ts");
		j->ts = tr_xstrdup(ts);
		j->step = SLACK_STEP_COMPLETE;
		slack_chan_kick(ch);
		return;
	}
	if (j->ev.type == TR_EV_MESSAGE && j->step == SLACK_STEP_COMPLETE && err != TR_OK) {
		tr_warn("slack: files.completeUploadExternal failed (%s) channel=%s",
		        error ? error : tr_strerror(err), ch->id);
		if (j->ts)
			err = TR_OK; /* the text is there; only the files are missing */
	}
	bool auth = false;
	if (err == TR_OK ||
	    (error && (!strcmp(error, "already_reacted") || !strcmp(error, "no_reaction")))) {
		const char *ts =
		    j->ev.type == TR_EV_MESSAGE ? (j->ts ? j->ts : js(body, "ts")) : NULL;
		tr_conn_ack(s->c, &j->ev, TR_OK, ts);
	} else {
		char detail[256];
		if (error && !strcmp(error, "not_in_channel"))
			snprintf(detail, sizeof(detail),
			         "bot not in channel %s: invite the app with /invite", ch->id);
		else if (error && !strcmp(error, "missing_scope"))
			snprintf(detail, sizeof(detail), "SLACK_BOT_TOKEN lacks scope %s",
			         tr_str(js(body, "needed")));
		else
			snprintf(detail, sizeof(detail), "%s: %s", method,
			         error ? error : tr_strerror(err));
		tr_warn("slack: delivery failed channel=%s %s", ch->id, detail);
		tr_conn_ack(s->c, &j->ev, err ? err : TR_E_PROTO, detail);
		auth = slack_error_is_auth(error);
	}
	slack_job_pop(ch);
	if (auth) {
		tr_conn_lost(s->c, TR_E_AUTH, "SLACK_BOT_TOKEN refused");
		return;
	}
	slack_chan_kick(ch);
}

static void slack_on_raw(struct slack_op *op, int err, long status, const char *body, size_t len)
{
	struct slack_chan *ch = (struct slack_chan *)((char *)op - offsetof(struct slack_chan, op));
	struct slack_job *j = ch->head;
	ch->busy = false;
	bool ok = err == TR_OK && status >= 200 && status < 300;
	if (j->step == SLACK_STEP_FETCH && ok && len > 0) {
		j->data = tr_xmalloc(len);
		memcpy(j->data, body, len);
		j->data_len = len;
		j->step = SLACK_STEP_URL;
	} else if (j->step == SLACK_STEP_UPLOAD && ok) {
		if (!j->files)
			j->files = json_array();
		const struct tr_attachment *a = &j->ev.attachments[j->att];
		json_array_append_new(j->files, json_pack("{s:s, s:s}", "id", j->file_id, "title",
		                                          a->name ? a->name : "file"));
		slack_job_next_attachment(j, false);
	} else {
		tr_info("slack: attachment %zu not %s (status %ld, %s): sent as a link channel=%s",
		        j->att, j->step == SLACK_STEP_FETCH ? "fetched" : "uploaded", status,
		        tr_strerror(err), ch->id);
		slack_job_next_attachment(j, true);
	}
	slack_chan_kick(ch);
}

static void slack_kick_all(struct slack *s)
{
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&s->chans, &i, &k, &kl, &v);)
		slack_chan_kick(v);
}

static int slack_deliver(struct tr_conn *c, const struct tr_event *ev)
{
	struct slack *s = tr_conn_state(c);
	if (!ev->has_dest || !ev->dest.channel)
		return TR_E_INVAL;
	char err[TR_ERR_LEN];
	char *payload = NULL;
	if (tr_event_encode(ev, &payload, err) != TR_OK)
		return TR_E_INVAL;
	struct slack_job *j = tr_xcalloc(1, sizeof(*j));
	int rc = tr_event_decode(payload, strlen(payload), true, &j->ev, err);
	free(payload);
	if (rc != TR_OK) {
		free(j);
		return TR_E_INVAL;
	}
	if (j->ev.type == TR_EV_MESSAGE && j->ev.n_attachments)
		j->step = SLACK_STEP_FETCH;
	struct slack_chan *ch = slack_chan_get(s, ev->dest.channel);
	if (ch->tail)
		ch->tail->next = j;
	else
		ch->head = j;
	ch->tail = j;
	slack_chan_kick(ch);
	return TR_OK;
}

/* ---------------------------------------------------------------- channel checks */

static void slack_on_check(struct slack_op *op, int err, json_t *body, const char *error, double ra)
{
	(void)ra;
	struct slack *s = op->s;
	char *id = s->check_id;
	s->check_id = NULL;
	const json_t *chan = json_object_get(body, "channel");
	if (err == TR_OK) {
		const char *name = js(chan, "name");
		slack_cache_bound(&s->chan_names, false);
		free(tr_map_put(&s->chan_names, id, strlen(id), tr_xstrdup(name ? name : "")));
		if (!json_is_true(json_object_get(chan, "is_member"))) {
			tr_error("slack: bot not in channel #%s (%s): invite the app there with "
			         "/invite @%s",
			         tr_str(name), id, tr_str(s->self_name));
			tr_conn_degraded(s->c, "bot not in a channel");
		}
	} else if (error && !strcmp(error, "channel_not_found")) {
		tr_error("slack: channel %s not found: check the rooms file (a channel id, e.g. "
		         "C024BE91L)",
		         id);
		tr_conn_degraded(s->c, "channel not found");
	} else if (error && !strcmp(error, "missing_scope")) {
		tr_error("slack: SLACK_BOT_TOKEN lacks scope %s (add it and reinstall the app)",
		         tr_str(js(body, "needed")));
		tr_conn_degraded(s->c, "missing scope");
	} else {
		tr_warn("slack: channel check failed channel=%s error=%s", id,
		        error ? error : tr_strerror(err));
	}
	free(id);
	s->check_next++;
	slack_check_next(s);
}

static void slack_check_next(struct slack *s)
{
	if (s->check.call || !s->online)
		return;
	size_t n = 0;
	const char *const *ids = tr_conn_channels(s->c, &n);
	if (s->check_next >= n && s->check_again) {
		s->check_again = false;
		s->check_next = 0;
	}
	if (s->check_next >= n)
		return;
	s->check_id = tr_xstrdup(ids[s->check_next]);
	const char *kv[] = {"channel", s->check_id, NULL};
	if (slack_api(s, &s->check, "conversations.info", s->bot_token, kv, slack_on_check) !=
	    TR_OK) {
		free(s->check_id);
		s->check_id = NULL;
	}
}

static int slack_set_channels(struct tr_conn *c, const char *const *ids, size_t n)
{
	(void)ids;
	(void)n;
	struct slack *s = tr_conn_state(c);
	s->check_again = true;
	if (!s->check.call) {
		s->check_again = false;
		s->check_next = 0;
		slack_check_next(s);
	}
	return TR_OK;
}

/* ---------------------------------------------------------------- Socket Mode */

static void slack_open_socket(struct slack *s);

static void slack_on_hello(struct slack *s, struct tr_ws *ws)
{
	if (ws == s->ws_next) {
		/* The new connection is live: only now let the old one go, so no event falls in
		 * the gap (api.slack.com/apis/socket-mode, "disconnect"). */
		struct tr_ws *old = s->ws_cur;
		s->ws_cur = ws;
		s->ws_next = NULL;
		tr_ws_close(old);
		tr_info("slack: socket mode connection refreshed");
	}
	if (!s->online) {
		s->online = true;
		char *detail = tr_xasprintf("connected as @%s", tr_str(s->self_name));
		tr_conn_online(s->c, detail);
		free(detail);
		s->check_next = 0;
		slack_check_next(s);
		slack_kick_all(s);
	}
}

static void slack_ws_message(void *arg, struct tr_ws *ws, const char *msg, size_t len, bool binary)
{
	struct slack *s = arg;
	if (binary)
		return;
	json_t *j = json_loadb(msg, len, 0, NULL);
	if (!json_is_object(j)) {
		tr_warn("slack: socket mode frame is not a JSON object size=%zu", len);
		json_decref(j);
		return;
	}
	const char *type = js(j, "type");
	const char *eid = js(j, "envelope_id");
	if (eid) {
		/* Ack at once: Slack redelivers envelopes not acked within ~3 s. */
		json_t *ack = json_pack("{s:s}", "envelope_id", eid);
		char *a = json_dumps(ack, JSON_COMPACT);
		if (!a || tr_ws_send(ws, a, strlen(a)) != TR_OK)
			tr_warn("slack: envelope ack not sent envelope=%s", eid);
		free(a);
		json_decref(ack);
	}
	if (type && !strcmp(type, "hello")) {
		slack_on_hello(s, ws);
	} else if (type && !strcmp(type, "disconnect")) {
		const char *reason = js(j, "reason");
		tr_info("slack: socket mode disconnect reason=%s", tr_str(reason));
		if (reason && !strcmp(reason, "link_disabled")) {
			tr_conn_lost(s->c, TR_E_CONFIG,
			             "Socket Mode is turned off for this app (link_disabled)");
		} else if (ws == s->ws_cur && !s->ws_next && !s->open.call) {
			slack_open_socket(s);
		}
	} else if (type && !strcmp(type, "events_api")) {
		const json_t *payload = json_object_get(j, "payload");
		json_t *event = json_object_get(payload, "event");
		if (json_is_object(event))
			slack_in_push(s, event);
	}
	json_decref(j);
}

static void slack_ws_close(void *arg, struct tr_ws *ws, int err, const char *detail)
{
	struct slack *s = arg;
	tr_info("slack: socket mode connection closed err=%s detail=%s", tr_strerror(err),
	        tr_str(detail));
	if (ws == s->ws_next) {
		s->ws_next = NULL;
		if (s->ws_cur)
			return;
	} else if (ws == s->ws_cur) {
		s->ws_cur = s->ws_next;
		s->ws_next = NULL;
		if (s->ws_cur)
			return;
	} else {
		return;
	}
	s->online = false;
	tr_conn_lost(s->c, TR_E_CLOSED, "socket mode connection closed");
}

static void slack_on_open(struct slack_op *op, int err, json_t *body, const char *error, double ra)
{
	(void)ra;
	struct slack *s = op->s;
	const char *url = js(body, "url");
	if (err != TR_OK || !url) {
		char detail[200];
		snprintf(detail, sizeof(detail), "apps.connections.open: %s%s",
		         error ? error : tr_strerror(err),
		         error && slack_error_is_auth(error) ? " (check SLACK_APP_TOKEN)" : "");
		tr_error("slack: %s", detail);
		if (!s->ws_cur)
			tr_conn_lost(s->c,
			             error && slack_error_is_auth(error) ? TR_E_AUTH : TR_E_IO,
			             detail);
		return;
	}
	struct tr_ws_opts o = {.url = url,
	                       .idle_ping_s = 20,
	                       .idle_hangup_s = 60,
	                       .max_message = 4 * 1024 * 1024,
	                       .on_message = slack_ws_message,
	                       .on_close = slack_ws_close,
	                       .arg = s};
	struct tr_ws *ws = NULL;
	if (tr_ws_open(s->wsx, &o, &ws) != TR_OK) {
		tr_error("slack: socket mode URL refused");
		if (!s->ws_cur)
			tr_conn_lost(s->c, TR_E_PROTO, "socket mode URL refused");
		return;
	}
	if (!s->ws_cur)
		s->ws_cur = ws;
	else
		s->ws_next = ws;
}

static void slack_open_socket(struct slack *s)
{
	const char *kv[] = {NULL};
	if (slack_api(s, &s->open, "apps.connections.open", s->app_token, kv, slack_on_open) !=
	        TR_OK &&
	    !s->ws_cur)
		tr_conn_lost(s->c, TR_E_IO, "apps.connections.open not started");
}

static void slack_on_auth(struct slack_op *op, int err, json_t *body, const char *error, double ra)
{
	(void)ra;
	struct slack *s = op->s;
	if (err != TR_OK) {
		char detail[200];
		snprintf(detail, sizeof(detail), "auth.test: %s%s",
		         error ? error : tr_strerror(err),
		         error && slack_error_is_auth(error) ? " (check SLACK_BOT_TOKEN)" : "");
		tr_error("slack: %s", detail);
		tr_conn_lost(s->c, error && slack_error_is_auth(error) ? TR_E_AUTH : err, detail);
		return;
	}
	free(s->self_user);
	free(s->self_bot);
	free(s->self_app);
	free(s->self_name);
	s->self_user = tr_xstrdup(js(body, "user_id"));
	s->self_bot = tr_xstrdup(js(body, "bot_id"));
	s->self_app = tr_xstrdup(js(body, "app_id"));
	s->self_name = tr_xstrdup(js(body, "user"));
	if (op->scopes[0]) {
		if (!slack_has_scope(op->scopes, "chat:write")) {
			tr_error(
			    "slack: SLACK_BOT_TOKEN lacks scope chat:write (add it under OAuth & "
			    "Permissions and reinstall the app)");
			tr_conn_lost(s->c, TR_E_CONFIG, "missing scope chat:write");
			return;
		}
		s->can_customize = slack_has_scope(op->scopes, "chat:write.customize");
		if (!s->can_customize)
			tr_warn("slack: SLACK_BOT_TOKEN lacks scope chat:write.customize: bridged "
			        "messages show the app's name, not their authors'");
		static const char *const wanted[] = {"channels:history", "reactions:write",
		                                     "users:read", "channels:read"};
		for (size_t i = 0; i < TR_ARRAY_LEN(wanted); i++)
			if (!slack_has_scope(op->scopes, wanted[i]))
				tr_warn("slack: SLACK_BOT_TOKEN lacks scope %s", wanted[i]);
	} else {
		s->can_customize = true;
	}
	tr_info("slack: authenticated user=%s bot=%s team=%s", tr_str(s->self_user),
	        tr_str(s->self_bot), tr_str(js(body, "team_id")));
	slack_open_socket(s);
}

/* ---------------------------------------------------------------- lifecycle */

static void slack_gc_run(struct slack *s)
{
	tr_http_free(s->old_http);
	s->old_http = NULL;
	tr_ws_ctx_free(s->old_wsx);
	s->old_wsx = NULL;
}

static void slack_gc(uv_timer_t *t)
{
	slack_gc_run(t->data);
}

static int slack_connect(struct tr_conn *c)
{
	struct slack *s = tr_conn_state(c);
	if (!s->gc_init) {
		uv_timer_init(tr_conn_loop(c), &s->gc);
		s->gc.data = s;
		s->gc_init = true;
	}
	if (!s->http)
		s->http = tr_http_new(tr_conn_loop(c));
	if (!s->wsx) {
		char err[TR_ERR_LEN];
		s->wsx = tr_ws_ctx_new(tr_conn_loop(c), 15, err);
		if (!s->wsx) {
			tr_error("slack: %s", err);
			return TR_E_IO;
		}
	}
	const char *kv[] = {NULL};
	int rc = slack_api(s, &s->boot, "auth.test", s->bot_token, kv, slack_on_auth);
	slack_in_run(s);
	return rc;
}

static void slack_disconnect(struct tr_conn *c)
{
	struct slack *s = tr_conn_state(c);
	s->online = false;
	slack_op_cancel(&s->boot);
	slack_op_cancel(&s->open);
	slack_op_cancel(&s->lookup);
	slack_op_cancel(&s->check);
	free(s->lookup_id);
	s->lookup_id = NULL;
	free(s->check_id);
	s->check_id = NULL;
	tr_ws_close(s->ws_cur);
	tr_ws_close(s->ws_next);
	s->ws_cur = s->ws_next = NULL;
	/* Queued deliveries stay queued, in order, for the next connection. */
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&s->chans, &i, &k, &kl, &v);) {
		struct slack_chan *ch = v;
		slack_op_cancel(&ch->op);
		ch->busy = false;
		uv_timer_stop(&ch->timer);
	}
	if (s->http || s->wsx) {
		slack_gc_run(s);
		s->old_http = s->http;
		s->old_wsx = s->wsx;
		s->http = NULL;
		s->wsx = NULL;
		uv_timer_start(&s->gc, slack_gc, 0, 0);
	}
}

static void slack_gc_closed(uv_handle_t *h)
{
	(void)h;
}

static void slack_chan_closed(uv_handle_t *h)
{
	struct slack_chan *ch = h->data;
	free(ch->id);
	free(ch);
}

static void slack_release(struct tr_conn *c)
{
	struct slack *s = tr_conn_state(c);
	slack_disconnect(c);
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&s->chans, &i, &k, &kl, &v);) {
		struct slack_chan *ch = v;
		while (ch->head)
			slack_job_pop(ch);
		uv_close((uv_handle_t *)&ch->timer, slack_chan_closed);
	}
	tr_map_cleanup(&s->chans);
	while (s->in_head) {
		struct slack_in *in = s->in_head;
		s->in_head = in->next;
		json_decref(in->event);
		free(in);
	}
	for (size_t i = 0; tr_map_next(&s->people, &i, &k, &kl, &v);) {
		struct slack_person *p = v;
		free(p->name);
		free(p->display);
		free(p->avatar);
		free(p);
	}
	tr_map_cleanup(&s->people);
	for (size_t i = 0; tr_map_next(&s->chan_names, &i, &k, &kl, &v);)
		free(v);
	tr_map_cleanup(&s->chan_names);
	slack_gc_run(s);
	if (s->gc_init)
		uv_close((uv_handle_t *)&s->gc, slack_gc_closed);
	/* The core stops the loop before release: let our handles finish closing. */
	uv_loop_t *loop = tr_conn_loop(c);
	for (int i = 0; i < 1000 && tr_ws_ctx_live(); i++)
		uv_run(loop, UV_RUN_ONCE);
	for (int i = 0; i < 4; i++)
		uv_run(loop, UV_RUN_NOWAIT);
	free(s->app_token);
	free(s->bot_token);
	free(s->api_url);
	free(s->self_user);
	free(s->self_bot);
	free(s->self_app);
	free(s->self_name);
}

const struct tr_connector slack_connector = {
    .network = "slack",
    .state_size = sizeof(struct slack),
    .caps =
        TR_CAP_EDIT | TR_CAP_DELETE | TR_CAP_REACT | TR_CAP_REPLY | TR_CAP_THREAD | TR_CAP_PUPPET,
    .configure = slack_configure,
    .connect = slack_connect,
    .deliver = slack_deliver,
    .set_channels = slack_set_channels,
    .disconnect = slack_disconnect,
    .release = slack_release,
};
