/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The rooms file of DESIGN §3 (fixed format), its validator, and the JSON form kept in Redis.
 *
 *   ; comment (whole lines starting with ';' or '#')
 *   [room cotech]
 *   slack-cotech = C024BE91L
 *   irc-libera   = #cotech in
 *
 * A value is one channel token (no white space) and an optional mode: inout (default), in, out.
 * Room names: [A-Za-z0-9_.-]{1,64}, unique. Connector names: tr_connector_name_valid(). One
 * endpoint (connector + channel) at most once per room; it may be in several rooms. */
#ifndef TRESTLE_COMMON_ROOMS_H
#define TRESTLE_COMMON_ROOMS_H

#include <jansson.h>
#include <stddef.h>
#include "buf.h"
#include "err.h"

#define TR_ROOMS_MAX_FILE (16 * 1024 * 1024)

enum tr_mode { TR_MODE_INOUT = 0, TR_MODE_IN, TR_MODE_OUT };

struct tr_endpoint {
	char *connector;
	char *channel;
	enum tr_mode mode;
	int line; /* where it was declared; 0 when loaded from JSON */
};

struct tr_room {
	char *name;
	struct tr_endpoint *eps;
	size_t n_eps;
	int line;
};

struct tr_rooms {
	struct tr_room *rooms;
	size_t n_rooms;
};

const char *tr_mode_name(enum tr_mode m);

/* Parses text (len bytes, need not be NUL-terminated). Every problem is appended to errors as
 * "FILENAME:LINE: reason\n" (all of them, not just the first). Returns TR_OK and fills *out
 * (owned: tr_rooms_cleanup), or TR_E_CONFIG with *out empty. */
int tr_rooms_parse(const char *text, size_t len, const char *filename, struct tr_rooms *out,
                   struct tr_buf *errors) TR_MUST_CHECK;
/* Reads the file at path (at most TR_ROOMS_MAX_FILE) and parses it. A file that cannot be read
 * is one error line "PATH: reason". */
int tr_rooms_load(const char *path, struct tr_rooms *out, struct tr_buf *errors) TR_MUST_CHECK;
void tr_rooms_cleanup(struct tr_rooms *r);

/* {"v":1,"rooms":[{"name":..,"endpoints":[{"connector":..,"channel":..,"mode":..}]}]}
 * New reference. */
json_t *tr_rooms_to_json(const struct tr_rooms *r);
/* The same JSON text as json_dumps(tr_rooms_to_json(r), JSON_COMPACT), written straight into
 * out without building a tree (a 10,000-room table would take megabytes of json_t). */
int tr_rooms_dump(const struct tr_rooms *r, struct tr_buf *out) TR_MUST_CHECK;
/* The reverse, validating as the parser does; TR_E_INVAL with err filled. */
int tr_rooms_from_json(const json_t *j, struct tr_rooms *out, char err[TR_ERR_LEN]) TR_MUST_CHECK;

/* Every distinct connector named, in first-seen order; a NULL-terminated array of borrowed
 * strings (free the array only). */
const char **tr_rooms_connectors(const struct tr_rooms *r, size_t *n);
/* Every distinct channel of connector across all rooms, in first-seen order; NULL-terminated
 * array of borrowed strings (free the array only). */
const char **tr_rooms_channels(const struct tr_rooms *r, const char *connector, size_t *n);

#endif
