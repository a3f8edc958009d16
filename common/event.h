/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The v1 bus payloads of DESIGN §2 (event, ack, status, channels) and their only JSON
 * encoder/decoder/validator. Decoding validates every rule: required fields, types, size
 * limits, UTF-8, identifier shapes. Unknown fields are ignored but kept in ev->json so that a
 * service forwarding an event (the router) passes them through unchanged. */
#ifndef TRESTLE_COMMON_EVENT_H
#define TRESTLE_COMMON_EVENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"

#define TR_EVENT_MAX_PAYLOAD     (256 * 1024) /* bytes of JSON */
#define TR_EVENT_MAX_TEXT        (64 * 1024)  /* bytes of text */
#define TR_EVENT_MAX_ID          1024         /* bytes of any identifier */
#define TR_EVENT_MAX_NAME        1024 /* bytes of author name/display/avatar, attachment fields */
#define TR_EVENT_MAX_ATTACHMENTS 32
#define TR_EVENT_MAX_CHANNELS    10000 /* entries of a channels list */
#define TR_CONNECTOR_NAME_MAX    63

enum tr_event_type {
	TR_EV_MESSAGE = 0,
	TR_EV_EDIT,
	TR_EV_DELETE,
	TR_EV_REACTION,
	TR_EV_JOIN,
	TR_EV_LEAVE,
	TR_EV_TOPIC,
	TR_EV__COUNT
};

struct tr_author {
	char *id; /* required */
	char *name, *display, *avatar;
};

struct tr_attachment {
	char *url; /* required */
	char *name, *mime;
	int64_t size; /* -1 when unknown */
};

struct tr_dest {
	char *connector, *channel;        /* required in an out event */
	char *reply_to, *thread, *target; /* the destination's own ids, when known */
};

struct tr_event {
	char *id;
	enum tr_event_type type;
	char *connector, *network, *channel;
	char *msgid; /* required for message and edit */
	int64_t ts;  /* milliseconds since the epoch */
	struct tr_author author;
	char *text; /* CommonMark; NULL when absent */
	struct tr_attachment *attachments;
	size_t n_attachments;
	char *reply_to, *thread, *target, *reaction;
	bool removed;
	/* out events only */
	char *room;
	bool has_dest;
	struct tr_dest dest;
	/* The decoded object (one reference owned by the event), NULL for events built in C. */
	json_t *json;
};

/* "message", "edit", ...; NULL for values out of range. */
const char *tr_event_type_name(enum tr_event_type t);
/* TR_OK and *out set, or TR_E_INVAL. */
int tr_event_type_parse(const char *s, enum tr_event_type *out) TR_MUST_CHECK;

/* True if s is a valid connector instance name: [a-z0-9][a-z0-9_-]{0,62}. */
bool tr_connector_name_valid(const char *s);

/* Decodes and validates one payload (not NUL-terminated; len bytes). On success fills *ev
 * (owned by the caller: tr_event_cleanup) and returns TR_OK. On failure returns TR_E_TOOBIG,
 * TR_E_UTF8 or TR_E_INVAL, leaves *ev cleaned, and writes the reason to err: a short phrase
 * naming the field ("missing field author.id", "field ts must be an integer"), never the
 * payload's content. want_dest: an out event, where room and dest are required. */
int tr_event_decode(const void *payload, size_t len, bool want_dest, struct tr_event *ev,
                    char err[TR_ERR_LEN]) TR_MUST_CHECK;
/* Validates a struct built in C by the same rules as the decoder. */
int tr_event_validate(const struct tr_event *ev, bool want_dest,
                      char err[TR_ERR_LEN]) TR_MUST_CHECK;
/* Encodes ev as a v1 JSON object (with room/dest when has_dest), newly allocated
 * NUL-terminated compact JSON in *out. When ev->json is set its unknown fields are kept.
 * TR_E_INVAL if ev does not validate, TR_E_TOOBIG past TR_EVENT_MAX_PAYLOAD. */
int tr_event_encode(const struct tr_event *ev, char **out, char err[TR_ERR_LEN]) TR_MUST_CHECK;
/* A deep copy of an event with its destination (through the one codec: encode, then decode as
 * an out event), for a connector that keeps an out event past deliver(). *out is owned by the
 * caller (tr_event_cleanup). TR_E_INVAL if ev does not validate. */
int tr_event_copy(const struct tr_event *ev, struct tr_event *out) TR_MUST_CHECK;
/* Frees every member (NULL members fine) and zeroes ev. */
void tr_event_cleanup(struct tr_event *ev);

struct tr_ack {
	char *id;
	char *dest_connector, *dest_channel;
	bool ok;
	char *msgid;  /* ok: the destination's id of what was posted (may be NULL) */
	char *error;  /* !ok: a short code ("forbidden", "ratelimited", "not_found", ...) */
	char *detail; /* !ok: human words for the log, never message text */
};
int tr_ack_decode(const void *payload, size_t len, struct tr_ack *ack,
                  char err[TR_ERR_LEN]) TR_MUST_CHECK;
int tr_ack_encode(const struct tr_ack *ack, char **out) TR_MUST_CHECK;
void tr_ack_cleanup(struct tr_ack *ack);

enum tr_state { TR_STATE_STARTING = 0, TR_STATE_ONLINE, TR_STATE_DEGRADED, TR_STATE_OFFLINE };
struct tr_status {
	char *connector, *network;
	enum tr_state state;
	int64_t since; /* ms since the epoch */
	char *detail;
};
const char *tr_state_name(enum tr_state s);
int tr_status_decode(const void *payload, size_t len, struct tr_status *st,
                     char err[TR_ERR_LEN]) TR_MUST_CHECK;
int tr_status_encode(const struct tr_status *st, char **out) TR_MUST_CHECK;
void tr_status_cleanup(struct tr_status *st);

/* Channels list: {"v":1,"channels":[...]}; *channels is a NULL-terminated array, owned. */
int tr_channels_decode(const void *payload, size_t len, char ***channels, size_t *n,
                       char err[TR_ERR_LEN]) TR_MUST_CHECK;
int tr_channels_encode(const char *const *channels, size_t n, char **out) TR_MUST_CHECK;
void tr_channels_free(char **channels);

/* Milliseconds since the epoch, for ts and since fields. */
int64_t tr_now_ms(void);

#endif
