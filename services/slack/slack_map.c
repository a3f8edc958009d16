/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Pure mapping for trestle-slack: Events API payloads (shapes of
 * ../shared/specs/slack/samples/events/)  -> struct tr_event, Slack error strings ->
 * enum tr_err, reaction names, and the per-method rate-limit buckets. No I/O. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "slack.h"

static const char *js(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

static bool streq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* Ours: posted by our bot user, our bot or our app. */
static bool slack_is_own(const json_t *m, const struct slack_self *self)
{
	if (!m || !self)
		return false;
	return streq(js(m, "bot_id"), self->bot_id) || streq(js(m, "app_id"), self->app_id) ||
	       streq(js(m, "user"), self->user_id);
}

static void slack_fill_author(struct tr_event *ev, const json_t *m, slack_person_fn *person,
                              void *arg)
{
	const char *user = js(m, "user");
	const char *bot = js(m, "bot_id");
	const char *username = js(m, "username");
	ev->author.id = tr_xstrdup(user ? user : bot ? bot : "unknown");
	const struct slack_person *p = person && user ? person(arg, user) : NULL;
	if (p) {
		ev->author.name = tr_xstrdup(p->name);
		ev->author.display = p->display && *p->display ? tr_xstrdup(p->display) : NULL;
		ev->author.avatar = tr_xstrdup(p->avatar);
	}
	if (username && *username) {
		/* Another app posting as someone (bot_message): show that name. */
		free(ev->author.display);
		ev->author.display = tr_xstrdup(username);
	}
	if (!ev->author.name)
		ev->author.name = tr_xstrdup(user ? user : bot ? bot : "unknown");
}

static char *slack_text(const json_t *m, tr_mrkdwn_name_fn *name, void *arg)
{
	const char *text = js(m, "text");
	if (!text || !*text)
		return NULL;
	char *out = NULL;
	if (tr_mrkdwn_to_commonmark(text, strlen(text), name, arg, &out) != TR_OK)
		return NULL;
	return out;
}

static void slack_fill_files(struct tr_event *ev, const json_t *m)
{
	const json_t *files = json_object_get(m, "files");
	size_t n = json_array_size(files);
	if (n > TR_EVENT_MAX_ATTACHMENTS)
		n = TR_EVENT_MAX_ATTACHMENTS;
	if (!n)
		return;
	ev->attachments = tr_xcalloc(n, sizeof(*ev->attachments));
	for (size_t i = 0; i < n; i++) {
		const json_t *f = json_array_get(files, i);
		const char *url = js(f, "url_private");
		if (!url)
			url = js(f, "permalink");
		if (!url)
			continue;
		struct tr_attachment *a = &ev->attachments[ev->n_attachments++];
		a->url = tr_xstrdup(url);
		a->name = tr_xstrdup(js(f, "name"));
		a->mime = tr_xstrdup(js(f, "mimetype"));
		a->size = json_is_integer(json_object_get(f, "size"))
		              ? json_integer_value(json_object_get(f, "size"))
		              : -1;
	}
}

static int slack_map_message(const char *conn, const json_t *e, const char *channel,
                             slack_person_fn *person, tr_mrkdwn_name_fn *name, void *arg,
                             struct tr_event *ev)
{
	const char *ts = js(e, "ts");
	const char *subtype = js(e, "subtype");
	if (!ts)
		return TR_E_INVAL;
	ev->type = TR_EV_MESSAGE;
	ev->id = tr_xasprintf("%s:message:%s:%s", conn, channel, ts);
	ev->msgid = tr_xstrdup(ts);
	slack_fill_author(ev, e, person, arg);
	char *text = slack_text(e, name, arg);
	if (streq(subtype, "me_message") && text) {
		ev->text = tr_xasprintf("_%s_", text);
		free(text);
	} else {
		ev->text = text;
	}
	slack_fill_files(ev, e);
	const char *thread = js(e, "thread_ts");
	if (thread && strcmp(thread, ts) != 0) {
		ev->thread = tr_xstrdup(thread);
		ev->reply_to = tr_xstrdup(thread);
	}
	if (!ev->text && !ev->n_attachments)
		return TR_E_NOTFOUND;
	return TR_OK;
}

int slack_map_event(const char *conn, const json_t *e, const struct slack_self *self,
                    slack_person_fn *person, tr_mrkdwn_name_fn *name, void *arg,
                    struct tr_event *ev)
{
	memset(ev, 0, sizeof(*ev));
	const char *type = js(e, "type");
	int rc = TR_E_NOTFOUND;
	if (!type)
		return TR_E_INVAL;
	if (streq(type, "message")) {
		const char *channel = js(e, "channel");
		const char *subtype = js(e, "subtype");
		if (!channel)
			return TR_E_INVAL;
		ev->channel = tr_xstrdup(channel);
		if (!subtype || streq(subtype, "thread_broadcast") ||
		    streq(subtype, "me_message") || streq(subtype, "file_share") ||
		    streq(subtype, "bot_message")) {
			if (slack_is_own(e, self))
				goto out;
			rc = slack_map_message(conn, e, channel, person, name, arg, ev);
		} else if (streq(subtype, "message_changed")) {
			const json_t *m = json_object_get(e, "message");
			const json_t *prev = json_object_get(e, "previous_message");
			const char *ts = js(m, "ts");
			if (!ts) {
				rc = TR_E_INVAL;
				goto out;
			}
			/* Slack also sends message_changed for reply counts and unfurls. */
			if (slack_is_own(m, self) || streq(js(m, "text"), js(prev, "text")))
				goto out;
			const json_t *edited = json_object_get(m, "edited");
			const char *ets = js(edited, "ts");
			if (!ets)
				ets = js(e, "event_ts");
			ev->type = TR_EV_EDIT;
			ev->id =
			    tr_xasprintf("%s:edit:%s:%s:%s", conn, channel, ts, ets ? ets : "0");
			ev->msgid = tr_xstrdup(ts);
			ev->target = tr_xstrdup(ts);
			slack_fill_author(ev, m, person, arg);
			ev->text = slack_text(m, name, arg);
			if (!ev->text)
				ev->text = tr_xstrdup("");
			rc = TR_OK;
		} else if (streq(subtype, "message_deleted")) {
			const char *dts = js(e, "deleted_ts");
			const json_t *prev = json_object_get(e, "previous_message");
			if (!dts) {
				rc = TR_E_INVAL;
				goto out;
			}
			if (slack_is_own(prev, self))
				goto out;
			ev->type = TR_EV_DELETE;
			ev->id = tr_xasprintf("%s:delete:%s:%s", conn, channel, dts);
			ev->target = tr_xstrdup(dts);
			slack_fill_author(ev, prev ? prev : e, person, arg);
			rc = TR_OK;
		} else if (streq(subtype, "channel_topic")) {
			const char *ts = js(e, "ts");
			if (slack_is_own(e, self) || !ts)
				goto out;
			ev->type = TR_EV_TOPIC;
			ev->id = tr_xasprintf("%s:topic:%s:%s", conn, channel, ts);
			const char *topic = js(e, "topic");
			ev->text = tr_xstrdup(topic ? topic : "");
			slack_fill_author(ev, e, person, arg);
			rc = TR_OK;
		}
	} else if (streq(type, "reaction_added") || streq(type, "reaction_removed")) {
		const json_t *item = json_object_get(e, "item");
		const char *channel = js(item, "channel"), *ts = js(item, "ts");
		const char *reaction = js(e, "reaction"), *user = js(e, "user");
		if (!streq(js(item, "type"), "message"))
			goto out;
		if (!channel || !ts || !reaction || !user) {
			rc = TR_E_INVAL;
			goto out;
		}
		if (streq(user, self ? self->user_id : NULL))
			goto out;
		bool removed = streq(type, "reaction_removed");
		const char *ets = js(e, "event_ts");
		ev->type = TR_EV_REACTION;
		ev->channel = tr_xstrdup(channel);
		ev->id = tr_xasprintf("%s:reaction:%s:%s:%s:%s:%s:%s", conn, channel, ts, user,
		                      reaction, removed ? "remove" : "add", ets ? ets : "0");
		ev->target = tr_xstrdup(ts);
		const char *u = slack_emoji_to_unicode(reaction);
		ev->reaction = u ? tr_xstrdup(u) : tr_xasprintf(":%s:", reaction);
		ev->removed = removed;
		slack_fill_author(ev, e, person, arg);
		rc = TR_OK;
	} else if (streq(type, "member_joined_channel") || streq(type, "member_left_channel")) {
		const char *channel = js(e, "channel"), *user = js(e, "user");
		if (!channel || !user) {
			rc = TR_E_INVAL;
			goto out;
		}
		if (streq(user, self ? self->user_id : NULL))
			goto out;
		bool join = streq(type, "member_joined_channel");
		const char *ets = js(e, "event_ts");
		ev->type = join ? TR_EV_JOIN : TR_EV_LEAVE;
		ev->channel = tr_xstrdup(channel);
		ev->id = tr_xasprintf("%s:%s:%s:%s:%s", conn, join ? "join" : "leave", channel,
		                      user, ets ? ets : "0");
		slack_fill_author(ev, e, person, arg);
		rc = TR_OK;
	}
out:
	if (rc != TR_OK)
		tr_event_cleanup(ev);
	return rc;
}

static void slack_ids_add(char ***ids, size_t *n, const char *id, size_t len)
{
	if (!len || len > 64)
		return;
	for (size_t i = 0; i < *n; i++)
		if (strlen((*ids)[i]) == len && memcmp((*ids)[i], id, len) == 0)
			return;
	*ids = tr_xrealloc(*ids, (*n + 2) * sizeof(**ids));
	(*ids)[(*n)++] = tr_xstrndup(id, len);
	(*ids)[*n] = NULL;
}

static void slack_text_ids(const char *text, char ***ids, size_t *n)
{
	for (const char *p = text; p && (p = strchr(p, '<')); p++) {
		if (p[1] != '@' && p[1] != '#')
			continue;
		const char *id = p + 2;
		size_t len = strcspn(id, "|>");
		if (id[len] == '|' || id[len] == '>')
			slack_ids_add(ids, n, id, len);
	}
}

void slack_event_ids(const json_t *e, char ***ids, size_t *n)
{
	const json_t *m = e;
	if (streq(js(e, "subtype"), "message_changed"))
		m = json_object_get(e, "message");
	else if (streq(js(e, "subtype"), "message_deleted"))
		m = json_object_get(e, "previous_message");
	const char *user = js(m, "user");
	if (!user)
		user = js(e, "user");
	if (user)
		slack_ids_add(ids, n, user, strlen(user));
	slack_text_ids(js(m, "text"), ids, n);
}

void slack_ids_free(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static const struct {
	const char *error;
	int err;
} slack_errors[] = {
    {"ratelimited", TR_E_RATELIMIT},
    {"rate_limited", TR_E_RATELIMIT},
    {"not_authed", TR_E_AUTH},
    {"invalid_auth", TR_E_AUTH},
    {"account_inactive", TR_E_AUTH},
    {"token_revoked", TR_E_AUTH},
    {"token_expired", TR_E_AUTH},
    {"not_allowed_token_type", TR_E_CONFIG},
    {"missing_scope", TR_E_FORBIDDEN},
    {"not_in_channel", TR_E_FORBIDDEN},
    {"is_archived", TR_E_FORBIDDEN},
    {"restricted_action", TR_E_FORBIDDEN},
    {"cant_update_message", TR_E_FORBIDDEN},
    {"cant_delete_message", TR_E_FORBIDDEN},
    {"channel_not_found", TR_E_NOTFOUND},
    {"message_not_found", TR_E_NOTFOUND},
    {"thread_not_found", TR_E_NOTFOUND},
    {"user_not_found", TR_E_NOTFOUND},
    {"file_not_found", TR_E_NOTFOUND},
    {"msg_too_long", TR_E_TOOBIG},
    {"no_text", TR_E_INVAL},
    {"invalid_name", TR_E_INVAL},
    {"invalid_arguments", TR_E_INVAL},
    {"too_many_reactions", TR_E_FORBIDDEN},
    {"internal_error", TR_E_AGAIN},
    {"fatal_error", TR_E_AGAIN},
    {"service_unavailable", TR_E_AGAIN},
    {"request_timeout", TR_E_TIMEOUT},
};

int slack_error_to_tr(const char *error)
{
	for (size_t i = 0; error && i < TR_ARRAY_LEN(slack_errors); i++)
		if (strcmp(slack_errors[i].error, error) == 0)
			return slack_errors[i].err;
	return TR_E_PROTO;
}

bool slack_error_is_auth(const char *error)
{
	int e = slack_error_to_tr(error);
	return e == TR_E_AUTH || e == TR_E_CONFIG;
}

char *slack_reaction_name(const char *reaction)
{
	if (!reaction || !*reaction)
		return NULL;
	const char *name = slack_emoji_to_name(reaction);
	if (name)
		return tr_xstrdup(name);
	size_t n = strlen(reaction);
	const char *p = reaction;
	if (n > 2 && p[0] == ':' && p[n - 1] == ':') {
		p++;
		n -= 2;
	}
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		          ch == '-' || ch == '+' || ch == '\'' || ch == ':';
		if (!ok)
			return NULL;
	}
	return n ? tr_xstrndup(p, n) : NULL;
}

/* Tier 2 ~20/min, Tier 3 ~50/min, Tier 4 ~100/min; chat.postMessage ~1/s per channel. */
const struct slack_tier slack_tiers[] = {
    {"chat.postMessage", 60, 10},
    {"chat.update", 50, 10},
    {"chat.delete", 50, 10},
    {"reactions.add", 50, 10},
    {"reactions.remove", 50, 10},
    {"users.info", 100, 20},
    {"conversations.info", 50, 10},
    {"files.getUploadURLExternal", 20, 5},
    {"files.completeUploadExternal", 20, 5},
    {"apps.connections.open", 20, 5},
    {"auth.test", 100, 20},
    {NULL, 20, 5},
};
const size_t slack_n_tiers = TR_ARRAY_LEN(slack_tiers);

size_t slack_tier_index(const char *method)
{
	size_t i = 0;
	for (; slack_tiers[i].method; i++)
		if (streq(slack_tiers[i].method, method))
			break;
	return i;
}

uint32_t slack_bucket_take(struct slack_bucket *b, const struct slack_tier *t, int64_t now_ms)
{
	if (b->pause_until_ms > now_ms)
		return (uint32_t)(b->pause_until_ms - now_ms);
	if (b->last_ms == 0) {
		b->tokens = t->burst;
		b->last_ms = now_ms;
	}
	double rate = t->per_minute / 60000.0; /* tokens per ms */
	b->tokens += (double)(now_ms - b->last_ms) * rate;
	if (b->tokens > t->burst)
		b->tokens = t->burst;
	b->last_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	return (uint32_t)ceil((1.0 - b->tokens) / rate);
}
