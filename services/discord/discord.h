/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-discord, private to services/discord/: settings, state, the gateway/REST state
 * machine (discord.c), the pure mapping functions (discord_map.c) and the rate-limit bucket
 * bookkeeping (discord_rl.c). */
#ifndef TRESTLE_SERVICES_DISCORD_H
#define TRESTLE_SERVICES_DISCORD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "buf.h"
#include "connector.h"
#include "event.h"
#include "http.h"
#include "map.h"
#include "ws.h"

/* GUILDS | GUILD_MESSAGES | GUILD_MESSAGE_REACTIONS | MESSAGE_CONTENT (NETWORKS.md §2a). */
#define DC_INTENTS             ((1 << 0) | (1 << 9) | (1 << 10) | (1 << 15))
#define DC_APP_CONTENT         (1 << 18) /* application flag GATEWAY_MESSAGE_CONTENT */
#define DC_APP_CONTENT_LIMITED (1 << 19)
#define DC_MAX_CONTENT         2000 /* characters of one message */
#define DC_RL_MAX_BUCKETS      1024
#define DC_UPLOAD_MAX_FILES    4                  /* files uploaded with one message */
#define DC_UPLOAD_MAX_FILE     (8 * 1024 * 1024)  /* bytes of one uploaded file */
#define DC_UPLOAD_MAX_TOTAL    (24 * 1024 * 1024) /* bytes of all files of one message */
#define DC_UPLOAD_TIMEOUT_MS   10000              /* fetching one file */

extern const struct tr_connector discord_connector;

/* ---- discord_rl.c: per-route buckets, the global limit, 429s (pure; times in ms) ---- */

struct dc_bucket {
	int64_t remaining; /* -1: unknown (no headers seen yet) */
	int64_t reset_at;  /* when remaining refills */
};

struct dc_rl {
	struct tr_map route_bucket; /* "METHOD /route/template" -> bucket hash (char *) */
	struct tr_map buckets;      /* "hash|major" (or "route|major" before a hash is known) ->
	                             * struct dc_bucket * */
	int64_t global_until;
};

void dc_rl_init(struct dc_rl *rl);
void dc_rl_cleanup(struct dc_rl *rl);
/* How long a request on route (e.g. "POST /webhooks/{id}/{token}") for major (the channel,
 * webhook or guild id) must wait before it may be sent; 0 when now. */
int64_t dc_rl_wait(const struct dc_rl *rl, const char *route, const char *major, int64_t now);
/* Records a response's headers (any of them may be NULL): X-RateLimit-Bucket, -Remaining,
 * -Reset-After (seconds, decimals). */
void dc_rl_update(struct dc_rl *rl, const char *route, const char *major, const char *bucket,
                  const char *remaining, const char *reset_after, int64_t now);
/* Records a 429: retry_after seconds (the body's, else the Retry-After header's), global when
 * the body or X-RateLimit-Global says so. Returns the delay in ms before the retry. */
int64_t dc_rl_limited(struct dc_rl *rl, const char *route, const char *major, double retry_after,
                      bool global, int64_t now);

/* ---- discord_map.c (pure) ---- */

/* What the mapping needs about this instance and the guilds it sees; all borrowed. */
struct dc_map_ctx {
	const char *connector;
	const char *self_id; /* the bot's user id */
	/* true when id is one of our webhooks. */
	bool (*own_webhook)(void *arg, const char *id);
	/* The parent channel of a thread, or NULL when channel is not a known thread. */
	const char *(*thread_parent)(void *arg, const char *channel);
	/* Names for tokens: kind '@' user, '&' role, '#' channel. */
	const char *(*name)(void *arg, char kind, const char *id);
	void *arg;
};

/* Maps a MESSAGE_CREATE or MESSAGE_UPDATE (d) to a bus event. TR_OK to publish, TR_E_NOTFOUND
 * when not bridged (our own or our webhook's, a system message, an update without new
 * content), TR_E_INVAL when malformed. */
int dc_map_message(const json_t *d, bool update, const struct dc_map_ctx *ctx,
                   struct tr_event *out) TR_MUST_CHECK;
/* MESSAGE_DELETE. */
int dc_map_delete(const json_t *d, const struct dc_map_ctx *ctx,
                  struct tr_event *out) TR_MUST_CHECK;
/* MESSAGE_REACTION_ADD/REMOVE; tag makes the id unique per occurrence (session and seq). */
int dc_map_reaction(const json_t *d, bool removed, const char *tag, const struct dc_map_ctx *ctx,
                    struct tr_event *out) TR_MUST_CHECK;

/* A webhook username Discord accepts: the author's display, else name, else id; "@", "#", ":"
 * and "```" dropped, "discord"/"clyde" broken up, 1-80 characters, never "everyone"/"here".
 * Newly allocated. */
char *dc_username(const struct tr_author *a);
/* The content of a message or edit: a reply quote line (when reply_url is set: "> ↪ name:
 * excerpt" with a jump link), the text in Discord markdown, attachments as links. Newly
 * allocated; NULL for bad UTF-8. */
char *dc_content(const struct tr_event *ev, const char *reply_name, const char *reply_excerpt,
                 const char *reply_url);
/* The JSON body of a webhook execute or edit: content, username/avatar_url (execute only),
 * allowed_mentions {"parse": []}. */
json_t *dc_webhook_body(const char *content, const struct tr_event *ev, bool execute);
/* One file to upload with a webhook execute; all borrowed. */
struct dc_upload {
	const char *name, *mime; /* sanitised by dc_multipart */
	const char *data;
	size_t len;
};
/* A multipart/form-data body for a webhook execute: part "payload_json" (payload with an
 * "attachments" array {id, filename} added) then "files[n]" parts, in out (bounded by its max).
 * TR_E_INVAL when boundary occurs in a file (pick another), TR_E_TOOBIG when out is full. */
int dc_multipart(json_t *payload, const struct dc_upload *up, size_t n, const char *boundary,
                 struct tr_buf *out) TR_MUST_CHECK;
/* The name of an uploaded file: name, else the URL's last path segment, else "file"; quotes,
 * backslashes, slashes and control characters replaced by '_', at most 200 bytes. Newly
 * allocated. */
char *dc_upload_name(const char *name, const char *url);
/* The gateway URL to open: base (from /gateway/bot, DISCORD_GATEWAY_URL or
 * resume_gateway_url) with "/?v=10&encoding=json" (or "?v=..." when base has a path). */
char *dc_gateway_url(const char *base);
/* The first heartbeat delay: interval * jitter, jitter in [0, 1) from a random 32-bit value. */
uint64_t dc_first_heartbeat_ms(uint64_t interval, uint32_t rnd);
/* A message id compared as a number: <0, 0, >0. */
int dc_snowflake_cmp(const char *a, const char *b);
/* Words for a gateway close code, with what to do (4004: the token; 4014: the portal switch);
 * *fatal is set when reconnecting cannot help. */
const char *dc_close_words(int code, bool *fatal);

#endif
