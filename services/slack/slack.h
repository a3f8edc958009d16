/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-slack's private state and the pure helpers its unit tests reach: Events API payload
 * -> struct tr_event, Slack error strings -> enum tr_err, reaction names <-> Unicode, and the
 * per-method rate-limit buckets. Private to services/slack/. */
#ifndef TRESTLE_SERVICES_SLACK_H
#define TRESTLE_SERVICES_SLACK_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include "connector.h"
#include "format_mrkdwn.h"
#include "map.h"

struct tr_http;
struct tr_http_call;
struct tr_ws;
struct tr_ws_ctx;

/* Who we are on Slack (auth.test): our own posts carry these and are never bridged back. */
struct slack_self {
	const char *user_id, *bot_id, *app_id;
};

/* A person as users.info describes them; fields may be NULL. */
struct slack_person {
	char *name, *display, *avatar;
};
typedef const struct slack_person *slack_person_fn(void *arg, const char *user_id);

/* Maps one Events API `event` object. TR_OK with *ev filled (caller cleans it up);
 * TR_E_NOTFOUND when it is not bridged (our own post, an event type we do not bridge, a
 * metadata-only message_changed); TR_E_INVAL when malformed. person and name may be NULL. */
int slack_map_event(const char *conn, const json_t *event, const struct slack_self *self,
                    slack_person_fn *person, tr_mrkdwn_name_fn *name, void *arg,
                    struct tr_event *ev) TR_MUST_CHECK;
/* The Slack ids (users "U…"/"W…", channels "C…"/"G…") an event needs names for: the author and
 * every <@…>/<#…> in its text. Appends newly allocated strings to *ids (NULL-terminated array
 * of *n), without duplicates. */
void slack_event_ids(const json_t *event, char ***ids, size_t *n);
void slack_ids_free(char **ids, size_t n);

/* Slack's `error` string -> enum tr_err (ratelimited -> TR_E_RATELIMIT, not_in_channel ->
 * TR_E_FORBIDDEN, invalid_auth -> TR_E_AUTH, channel_not_found -> TR_E_NOTFOUND, ...). */
int slack_error_to_tr(const char *error);
/* True for errors that mean the token itself is wrong (the connection must stop). */
bool slack_error_is_auth(const char *error);

/* Reactions: Slack short name -> Unicode (NULL when not in the table) and back. */
const char *slack_emoji_to_unicode(const char *name);
const char *slack_emoji_to_name(const char *utf8);
/* The Slack reaction name for a bus reaction (Unicode, ":name:" or a bare name), newly
 * allocated, or NULL when it has none. */
char *slack_reaction_name(const char *reaction);

/* ---- rate limits: a token bucket per Web API method (tiers of api.slack.com/apis/rate-limits) */
struct slack_bucket {
	double tokens;
	int64_t last_ms;
	int64_t pause_until_ms; /* set from Retry-After */
};
struct slack_tier {
	const char *method;
	double per_minute, burst;
};
/* Index of method's tier in the table (the last entry is the default). */
size_t slack_tier_index(const char *method);
extern const struct slack_tier slack_tiers[];
extern const size_t slack_n_tiers;
/* Milliseconds to wait before method may be called at now_ms; 0 means go (a token is taken). */
uint32_t slack_bucket_take(struct slack_bucket *b, const struct slack_tier *t, int64_t now_ms);

/* ---- connector state ---- */

struct slack;
struct slack_op;
typedef void slack_op_fn(struct slack_op *op, int err, json_t *body, const char *error,
                         double retry_after_s);

/* One Web API call slot: at most one request in flight per slot, so no per-call allocation. */
typedef void slack_raw_fn(struct slack_op *op, int err, long status, const char *body, size_t len);

struct slack_op {
	struct slack *s;
	slack_op_fn *fn;
	slack_raw_fn *raw;
	struct tr_http_call *call;
	char scopes[512]; /* x-oauth-scopes of the last response */
};

/* A message with attachments goes FETCH -> URL -> UPLOAD for each attachment (the external
 * upload flow), then MAIN (chat.postMessage) and COMPLETE (files.completeUploadExternal). */
enum slack_step {
	SLACK_STEP_MAIN = 0,
	SLACK_STEP_FETCH,
	SLACK_STEP_URL,
	SLACK_STEP_UPLOAD,
	SLACK_STEP_COMPLETE,
};

struct slack_job {
	struct slack_job *next;
	struct tr_event ev; /* a deep copy of the out event */
	unsigned attempts;  /* transport failures so far */
	enum slack_step step;
	size_t att;                            /* the attachment being uploaded */
	bool linked[TR_EVENT_MAX_ATTACHMENTS]; /* posted as a link instead */
	char *data;                            /* the fetched file */
	size_t data_len;
	char *upload_url, *file_id;
	json_t *files; /* [{id, title}] uploaded, to complete */
	char *ts;      /* the posted message (the ack's msgid) */
};

/* A destination channel's ordered delivery queue. */
struct slack_chan {
	struct slack *s;
	char *id;
	struct slack_job *head, *tail;
	bool busy;
	uv_timer_t timer;
	struct slack_op op;
};

struct slack_in {
	struct slack_in *next;
	json_t *event;
};

struct slack {
	struct tr_conn *c;
	/* settings */
	char *app_token, *bot_token, *api_url;
	/* connection */
	struct tr_http *http;
	struct tr_ws_ctx *wsx;
	struct tr_ws *ws_cur, *ws_next;
	/* Retired by disconnect() (which may run inside their callbacks), freed on the next loop
	 * turn so that nothing of ours keeps the loop alive once the core stops. */
	struct tr_http *old_http;
	struct tr_ws_ctx *old_wsx;
	uv_timer_t gc;
	bool gc_init;
	struct slack_op boot, open, lookup, check;
	bool online, can_customize, connecting;
	char *self_user, *self_bot, *self_app, *self_name;
	/* inbound, in order */
	struct slack_in *in_head, *in_tail;
	size_t in_len;
	char *lookup_id; /* the id the lookup slot is resolving */
	/* caches (bounded) */
	struct tr_map people;     /* user id -> struct slack_person * */
	struct tr_map chan_names; /* channel id -> char * */
	/* outbound */
	struct tr_map chans; /* channel id -> struct slack_chan * */
	struct slack_bucket buckets[16];
	size_t check_next;
	char *check_id;
	bool check_again;
};

#endif
