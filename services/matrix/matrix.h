/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-matrix, private to services/matrix/: settings, state, the pure mapping functions
 * (matrix_map.c) and the application-service HTTP listener (matrix_asd.c). */
#ifndef TRESTLE_SERVICES_MATRIX_H
#define TRESTLE_SERVICES_MATRIX_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>
#include "buf.h"
#include "connector.h"
#include "event.h"
#include "http.h"
#include "map.h"

#define MATRIX_TXN_KEEP 512 /* appservice transaction ids remembered across restarts */

struct matrix_cfg {
	char *hs_url;      /* without trailing slash */
	char *server_name; /* example.org */
	char *as_token, *hs_token, *as_listen, *as_id;
	char *as_url;       /* how the homeserver reaches the listener (registration only) */
	char *access_token; /* bot mode when set */
	char *bot_localpart;
	char *puppet_pattern; /* "_trestle_{network}_{id}" */
	char *prefix_tpl;     /* bot mode: "<{name}> " */
	bool appservice;
};

/* What the mapping needs to know about this instance; all borrowed. */
struct matrix_map_ctx {
	const char *connector;
	const char *hs_url;
	const char *server_name;
	const char *bot_user; /* @_trestle_bot:server, or the bot mode account */
	const char *puppet_pattern;
	/* Display name of a user in a room, or NULL (borrowed). */
	const char *(*display)(void *arg, const char *room, const char *user);
	void *arg;
};

struct matrix_job;
struct matrix_asd;

struct matrix {
	struct matrix_cfg cfg;
	struct tr_conn *c;
	struct tr_http *http;
	struct matrix_asd *asd;
	char *user_id; /* the bot's own id */
	bool online;
	/* Outgoing deliveries, strictly one at a time so per-channel order holds. */
	struct matrix_job *jobs, **jobs_tail;
	struct tr_http_call *call; /* the request in flight for the head job */
	uv_timer_t timer;          /* delivery retry delays (429, errors) */
	uv_timer_t sync_timer;     /* bot mode: the next /sync after a failure */
	bool timer_init;
	/* Caches: keys are strings, values are tr_xstrdup'd strings (or (void *)1 flags). */
	struct tr_map registered; /* puppet user id -> 1 */
	struct tr_map profile;    /* puppet user id -> "displayname\x1favatar source" set */
	struct tr_map avatars;    /* avatar source URL -> mxc:// URI */
	struct tr_map joined;     /* "user\x1froom" -> 1 */
	struct tr_map names;      /* "room\x1fuser" -> display name */
	struct tr_map encrypted;  /* room -> 1 when m.room.encryption seen; "n" once notified */
	struct tr_map room_check; /* room -> 1 once the bot joined and encryption was checked */
	struct tr_map reactions;  /* our reaction event id -> "target\x1fkey"; also the reverse key
	                           * "user\x1ftarget\x1fkey" -> reaction event id */
	/* Appservice transactions already handled (persisted in the state dir). */
	char *txns[MATRIX_TXN_KEEP];
	size_t n_txns, txn_next;
	/* Bot mode. */
	char *since;
	struct tr_http_call *sync_call;
	unsigned sync_failures;
	unsigned long long counter;
	char *status_detail;
};

extern const struct tr_connector matrix_connector;
/* `trestle-matrix registration`: prints a registration YAML; returns the exit code. */
int matrix_registration_main(void);

/* ---- matrix_map.c (pure) ---- */

/* Maps one Matrix client event (as pushed in a transaction or in a /sync timeline, with room_id
 * given separately when absent) to a bus event in *out. TR_OK when it is to be published,
 * TR_E_NOTFOUND when it is not bridged (own namespace, unknown type, state without meaning),
 * TR_E_INVAL when malformed. */
int matrix_map_event(const json_t *ev, const char *room_id, const struct matrix_map_ctx *ctx,
                     struct tr_event *out) TR_MUST_CHECK;
/* True for the bot and every user of the puppet namespace. */
bool matrix_is_own(const struct matrix_map_ctx *ctx, const char *user_id);
/* The puppet's localpart for an author of another network: the pattern with {network} and {id}
 * replaced, each byte outside [a-z0-9._-] written as "=xx" (the spec's user id escaping). */
char *matrix_puppet_localpart(const char *pattern, const char *network, const char *id);
/* The m.room.message content for a message or edit: body, HTML, m.mentions {}, relations from
 * dest. prefix_name: bot mode's author shown in front (NULL for puppets). NULL for types that
 * are not messages. */
json_t *matrix_message_content(const struct tr_event *ev, const char *prefix_tpl,
                               const char *prefix_name);
/* An attachment message (m.image/m.file...) for an uploaded mxc URI. */
json_t *matrix_attachment_content(const struct tr_event *ev, const struct tr_attachment *a,
                                  const char *mxc);
/* A registration YAML for the homeserver admin (tokens given). Newly allocated. */
char *matrix_registration_yaml(const struct matrix_cfg *cfg, const char *as_token,
                               const char *hs_token);
/* The transaction id for part `part` of a delivery: deterministic in the event id and the
 * destination, so a redelivery or a retry reuses it and the homeserver never posts twice. */
char *matrix_txn_id(const struct tr_event *ev, unsigned part);
/* Removes a legacy reply fallback ("> <@user> ..." lines then a blank line). Newly allocated. */
char *matrix_strip_reply_fallback(const char *body);
/* The http(s) URL of an mxc:// URI on hs_url (legacy media download). NULL when not mxc. */
char *matrix_mxc_http(const char *hs_url, const char *mxc);

/* ---- matrix_asd.c: the application-service HTTP listener ---- */

/* Handles one request: method, path (no query), query (may be ""), the Authorization header
 * (or NULL) and the body (borrowed). Fills resp (JSON) and returns the status code. */
typedef int matrix_asd_fn(void *arg, const char *method, const char *path, const char *query,
                          const char *authz, const char *body, size_t len, struct tr_buf *resp);
struct matrix_asd *matrix_asd_start(uv_loop_t *loop, const char *addr, matrix_asd_fn *fn, void *arg,
                                    char err[TR_ERR_LEN]);
void matrix_asd_close(struct matrix_asd *a);
/* Inside fn only: the response will come later through matrix_asd_reply (fn's return value
 * is then ignored). Returns the request's id. */
uint64_t matrix_asd_defer(struct matrix_asd *a);
/* Answers a deferred request; nothing happens if its connection has gone. */
void matrix_asd_reply(struct matrix_asd *a, uint64_t id, int status, const char *json);

#endif
