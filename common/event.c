/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The v1 bus payloads (DESIGN §2) to and from JSON. Decoding checks size and UTF-8 on the raw
 * bytes before jansson sees them, copies the known fields into the struct, then runs the same
 * validator a struct built in C goes through. Encoding starts from the decoded object, if any,
 * so that fields this version does not know pass through a forwarding service unchanged. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "utf8.h"

#define TR_ROOM_MAX   64
#define TR_DETAIL_MAX 1024

/* Flags for tr_check_str. */
#define TR_CK_REQUIRED 0x1
#define TR_CK_NONEMPTY 0x2
#define TR_CK_NOCTRL   0x4
#define TR_CK_ID       (TR_CK_NONEMPTY | TR_CK_NOCTRL)

static const char *const tr_event_type_names[TR_EV__COUNT] = {
    [TR_EV_MESSAGE] = "message",   [TR_EV_EDIT] = "edit", [TR_EV_DELETE] = "delete",
    [TR_EV_REACTION] = "reaction", [TR_EV_JOIN] = "join", [TR_EV_LEAVE] = "leave",
    [TR_EV_TOPIC] = "topic",
};

static const char *const tr_state_names[] = {
    [TR_STATE_STARTING] = "starting",
    [TR_STATE_ONLINE] = "online",
    [TR_STATE_DEGRADED] = "degraded",
    [TR_STATE_OFFLINE] = "offline",
};

static void tr_fail(char *err, const char *fmt, ...) TR_PRINTF(2, 3);

/* err may be NULL: the encoders of ack, status and channels have no error buffer. */
static void tr_fail(char *err, const char *fmt, ...)
{
	if (!err)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, TR_ERR_LEN, fmt, ap);
	va_end(ap);
}

const char *tr_event_type_name(enum tr_event_type t)
{
	if ((unsigned)t >= TR_EV__COUNT)
		return NULL;
	return tr_event_type_names[t];
}

int tr_event_type_parse(const char *s, enum tr_event_type *out)
{
	for (size_t i = 0; s && i < TR_EV__COUNT; i++) {
		if (strcmp(s, tr_event_type_names[i]) == 0) {
			*out = (enum tr_event_type)i;
			return TR_OK;
		}
	}
	return TR_E_INVAL;
}

const char *tr_state_name(enum tr_state s)
{
	if ((unsigned)s >= TR_ARRAY_LEN(tr_state_names))
		return NULL;
	return tr_state_names[s];
}

static int tr_state_parse(const char *s, enum tr_state *out)
{
	for (size_t i = 0; s && i < TR_ARRAY_LEN(tr_state_names); i++) {
		if (strcmp(s, tr_state_names[i]) == 0) {
			*out = (enum tr_state)i;
			return TR_OK;
		}
	}
	return TR_E_INVAL;
}

bool tr_connector_name_valid(const char *s)
{
	if (!s)
		return false;
	size_t i = 0;
	for (; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (i > 0)
			ok = ok || c == '_' || c == '-';
		if (!ok || i >= TR_CONNECTOR_NAME_MAX)
			return false;
	}
	return i > 0;
}

int64_t tr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- value rules, shared by the decoders and the struct validators ---- */

/* Checks one string field named prefix+key. Size first, so that an oversized field is reported
 * as such even when it is also malformed. */
static int tr_check_str(const char *s, const char *prefix, const char *key, unsigned flags,
                        size_t max, char *err)
{
	if (!s) {
		if (!(flags & TR_CK_REQUIRED))
			return TR_OK;
		tr_fail(err, "missing field %s%s", prefix, key);
		return TR_E_INVAL;
	}
	size_t len = strlen(s);
	if (len > max) {
		tr_fail(err, "field %s%s over %zu bytes", prefix, key, max);
		return TR_E_TOOBIG;
	}
	if ((flags & TR_CK_NONEMPTY) && len == 0) {
		tr_fail(err, "field %s%s is empty", prefix, key);
		return TR_E_INVAL;
	}
	if (!tr_utf8_valid(s, len)) {
		tr_fail(err, "field %s%s is not valid UTF-8", prefix, key);
		return TR_E_UTF8;
	}
	if (flags & TR_CK_NOCTRL) {
		for (size_t i = 0; i < len; i++) {
			if ((unsigned char)s[i] < 0x20) {
				tr_fail(err, "field %s%s has a control character", prefix, key);
				return TR_E_INVAL;
			}
		}
	}
	return TR_OK;
}

static int tr_check_id(const char *s, const char *prefix, const char *key, bool required, char *err)
{
	return tr_check_str(s, prefix, key, TR_CK_ID | (required ? TR_CK_REQUIRED : 0),
	                    TR_EVENT_MAX_ID, err);
}

static int tr_check_name_field(const char *s, const char *prefix, const char *key, char *err)
{
	if (!s) {
		tr_fail(err, "missing field %s%s", prefix, key);
		return TR_E_INVAL;
	}
	if (!tr_connector_name_valid(s)) {
		tr_fail(err, "field %s%s is not a valid name", prefix, key);
		return TR_E_INVAL;
	}
	return TR_OK;
}

/* ---- JSON helpers ---- */

/* The member key of obj (borrowed), or NULL when absent or null: null means absent. */
static json_t *tr_jget(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_null(v) ? NULL : v;
}

/* Copies a string member into *out (left NULL when absent). */
static int tr_jstr(const json_t *obj, const char *prefix, const char *key, char **out, char *err)
{
	json_t *v = tr_jget(obj, key);
	if (!v)
		return TR_OK;
	if (!json_is_string(v)) {
		tr_fail(err, "field %s%s must be a string", prefix, key);
		return TR_E_INVAL;
	}
	*out = tr_xstrndup(json_string_value(v), json_string_length(v));
	return TR_OK;
}

static int tr_jint(const json_t *obj, const char *prefix, const char *key, bool required,
                   bool *present, int64_t *out, char *err)
{
	json_t *v = tr_jget(obj, key);
	*present = v != NULL;
	if (!v) {
		if (!required)
			return TR_OK;
		tr_fail(err, "missing field %s%s", prefix, key);
		return TR_E_INVAL;
	}
	if (!json_is_integer(v)) {
		tr_fail(err, "field %s%s must be an integer", prefix, key);
		return TR_E_INVAL;
	}
	*out = (int64_t)json_integer_value(v);
	return TR_OK;
}

static int tr_jbool(const json_t *obj, const char *prefix, const char *key, bool required,
                    bool *out, char *err)
{
	json_t *v = tr_jget(obj, key);
	if (!v) {
		if (!required)
			return TR_OK;
		tr_fail(err, "missing field %s%s", prefix, key);
		return TR_E_INVAL;
	}
	if (!json_is_boolean(v)) {
		tr_fail(err, "field %s%s must be true or false", prefix, key);
		return TR_E_INVAL;
	}
	*out = json_is_true(v);
	return TR_OK;
}

/* An object member; *out NULL when absent and not required. */
static int tr_jobj(const json_t *obj, const char *key, bool required, json_t **out, char *err)
{
	json_t *v = tr_jget(obj, key);
	*out = NULL;
	if (!v) {
		if (!required)
			return TR_OK;
		tr_fail(err, "missing field %s", key);
		return TR_E_INVAL;
	}
	if (!json_is_object(v)) {
		tr_fail(err, "field %s must be an object", key);
		return TR_E_INVAL;
	}
	*out = v;
	return TR_OK;
}

/* Every payload is checked for size and UTF-8 before jansson parses it, so that the cost of a
 * hostile payload is bounded and the reason logged is precise. jansson's own messages quote
 * the input, so only its error code and position are used. */
static int tr_json_parse(const void *payload, size_t len, json_t **out, char *err)
{
	*out = NULL;
	if (!payload && len) {
		tr_fail(err, "no payload");
		return TR_E_INVAL;
	}
	if (!payload)
		payload = "";
	if (len > TR_EVENT_MAX_PAYLOAD) {
		tr_fail(err, "payload over %d bytes", TR_EVENT_MAX_PAYLOAD);
		return TR_E_TOOBIG;
	}
	if (!tr_utf8_valid(payload, len)) {
		tr_fail(err, "payload is not valid UTF-8");
		return TR_E_UTF8;
	}
	json_error_t jerr;
	json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		const char *why = "syntax error";
		int rc = TR_E_INVAL;
		switch (json_error_code(&jerr)) {
		case json_error_out_of_memory:
			tr_fail(err, "out of memory parsing payload");
			return TR_E_NOMEM;
		case json_error_premature_end_of_input:
			why = "unexpected end of input";
			break;
		case json_error_end_of_input_expected:
			why = "trailing data after the value";
			break;
		case json_error_duplicate_key:
			why = "duplicate key";
			break;
		case json_error_null_character:
			why = "NUL character";
			break;
		case json_error_numeric_overflow:
			why = "number out of range";
			break;
		case json_error_stack_overflow:
			why = "nested too deeply";
			break;
		case json_error_invalid_utf8:
			why = "invalid UTF-8";
			rc = TR_E_UTF8;
			break;
		default:
			/* jansson reports "\ud800" and other lone surrogates as a syntax
			 * error; they are bad Unicode, so say so. */
			if (strncmp(jerr.text, "invalid Unicode", 15) == 0) {
				why = "invalid Unicode escape";
				rc = TR_E_UTF8;
			}
			break;
		}
		tr_fail(err, "payload is not JSON: %s at byte %d", why, jerr.position);
		return rc;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		tr_fail(err, "payload must be a JSON object");
		return TR_E_INVAL;
	}
	*out = root;
	return TR_OK;
}

static int tr_jversion(const json_t *root, char *err)
{
	bool present = false;
	int64_t v = 0;
	int rc = tr_jint(root, "", "v", true, &present, &v, err);
	if (rc != TR_OK)
		return rc;
	if (v != 1) {
		tr_fail(err, "field v must be 1");
		return TR_E_INVAL;
	}
	return TR_OK;
}

struct tr_dump {
	struct tr_buf buf;
	bool toobig;
};

static int tr_dump_cb(const char *p, size_t n, void *data)
{
	struct tr_dump *d = data;
	if (tr_buf_append(&d->buf, p, n) != TR_OK) {
		d->toobig = true;
		return -1;
	}
	return 0;
}

/* Compact JSON into a buffer capped at the payload limit, so an oversized result is never
 * built in full. */
static int tr_json_dump(const json_t *obj, char **out, char *err)
{
	struct tr_dump d = {.toobig = false};
	int rc = TR_OK;
	tr_buf_init(&d.buf, TR_EVENT_MAX_PAYLOAD);
	if (json_dump_callback(obj, tr_dump_cb, &d, JSON_COMPACT) != 0) {
		rc = d.toobig ? TR_E_TOOBIG : TR_E_NOMEM;
		if (d.toobig)
			tr_fail(err, "payload over %d bytes", TR_EVENT_MAX_PAYLOAD);
		else
			tr_fail(err, "out of memory encoding");
		goto out;
	}
	*out = tr_buf_take(&d.buf);
out:
	tr_buf_cleanup(&d.buf);
	return rc;
}

/* Sets obj[key] to the string s, or removes the key when s is NULL. Returns false when jansson
 * could not allocate. */
static bool tr_jset_str(json_t *obj, const char *key, const char *s)
{
	if (!s) {
		json_object_del(obj, key);
		return true;
	}
	return json_object_set_new(obj, key, json_string(s)) == 0;
}

static bool tr_jset_int(json_t *obj, const char *key, int64_t v)
{
	return json_object_set_new(obj, key, json_integer((json_int_t)v)) == 0;
}

/* obj[key] as an object to update in place, replacing a member of another type. NULL when
 * jansson could not allocate. */
static json_t *tr_jchild(json_t *obj, const char *key)
{
	json_t *c = json_object_get(obj, key);
	if (json_is_object(c))
		return c;
	c = json_object();
	if (json_object_set_new(obj, key, c) != 0)
		return NULL;
	return c;
}

/* ---- event ---- */

int tr_event_copy(const struct tr_event *ev, struct tr_event *out)
{
	char err[TR_ERR_LEN];
	char *payload = NULL;
	int rc = tr_event_encode(ev, &payload, err);
	if (rc == TR_OK)
		rc = tr_event_decode(payload, strlen(payload), true, out, err);
	free(payload);
	return rc;
}

void tr_event_cleanup(struct tr_event *ev)
{
	if (!ev)
		return;
	free(ev->id);
	free(ev->connector);
	free(ev->network);
	free(ev->channel);
	free(ev->msgid);
	free(ev->author.id);
	free(ev->author.name);
	free(ev->author.display);
	free(ev->author.avatar);
	free(ev->text);
	for (size_t i = 0; ev->attachments && i < ev->n_attachments; i++) {
		free(ev->attachments[i].url);
		free(ev->attachments[i].name);
		free(ev->attachments[i].mime);
	}
	free(ev->attachments);
	free(ev->reply_to);
	free(ev->thread);
	free(ev->target);
	free(ev->reaction);
	free(ev->room);
	free(ev->dest.connector);
	free(ev->dest.channel);
	free(ev->dest.reply_to);
	free(ev->dest.thread);
	free(ev->dest.target);
	json_decref(ev->json);
	memset(ev, 0, sizeof(*ev));
}

static int tr_validate_attachments(const struct tr_event *ev, char *err)
{
	if (ev->n_attachments > TR_EVENT_MAX_ATTACHMENTS) {
		tr_fail(err, "field attachments over %d entries", TR_EVENT_MAX_ATTACHMENTS);
		return TR_E_TOOBIG;
	}
	if (ev->n_attachments && !ev->attachments) {
		tr_fail(err, "field attachments missing for n_attachments %zu", ev->n_attachments);
		return TR_E_INVAL;
	}
	for (size_t i = 0; i < ev->n_attachments; i++) {
		const struct tr_attachment *a = &ev->attachments[i];
		char prefix[48];
		int rc;
		snprintf(prefix, sizeof(prefix), "attachments[%zu].", i);
		rc = tr_check_str(a->url, prefix, "url", TR_CK_REQUIRED | TR_CK_ID,
		                  TR_EVENT_MAX_NAME, err);
		if (rc == TR_OK)
			rc = tr_check_str(a->name, prefix, "name", 0, TR_EVENT_MAX_NAME, err);
		if (rc == TR_OK)
			rc = tr_check_str(a->mime, prefix, "mime", 0, TR_EVENT_MAX_NAME, err);
		if (rc == TR_OK && a->size < -1) {
			tr_fail(err, "field %ssize must not be negative", prefix);
			rc = TR_E_INVAL;
		}
		if (rc != TR_OK)
			return rc;
	}
	return TR_OK;
}

static int tr_validate_dest(const struct tr_event *ev, char *err)
{
	int rc = tr_check_str(ev->room, "", "room", TR_CK_REQUIRED | TR_CK_ID, TR_ROOM_MAX, err);
	if (rc != TR_OK)
		return rc;
	if (!ev->has_dest) {
		tr_fail(err, "missing field dest");
		return TR_E_INVAL;
	}
	const struct tr_dest *d = &ev->dest;
	if ((rc = tr_check_name_field(d->connector, "dest.", "connector", err)) != TR_OK ||
	    (rc = tr_check_id(d->channel, "dest.", "channel", true, err)) != TR_OK ||
	    (rc = tr_check_id(d->reply_to, "dest.", "reply_to", false, err)) != TR_OK ||
	    (rc = tr_check_id(d->thread, "dest.", "thread", false, err)) != TR_OK ||
	    (rc = tr_check_id(d->target, "dest.", "target", false, err)) != TR_OK)
		return rc;
	return TR_OK;
}

int tr_event_validate(const struct tr_event *ev, bool want_dest, char err[TR_ERR_LEN])
{
	int rc;
	if (!ev) {
		tr_fail(err, "no event");
		return TR_E_INVAL;
	}
	if ((rc = tr_check_id(ev->id, "", "id", true, err)) != TR_OK)
		return rc;
	if ((unsigned)ev->type >= TR_EV__COUNT) {
		tr_fail(err, "field type has an unknown value");
		return TR_E_INVAL;
	}
	bool need_msgid = ev->type == TR_EV_MESSAGE || ev->type == TR_EV_EDIT;
	bool need_target =
	    ev->type == TR_EV_EDIT || ev->type == TR_EV_DELETE || ev->type == TR_EV_REACTION;
	bool need_reaction = ev->type == TR_EV_REACTION;
	if ((rc = tr_check_name_field(ev->connector, "", "connector", err)) != TR_OK ||
	    (rc = tr_check_name_field(ev->network, "", "network", err)) != TR_OK ||
	    (rc = tr_check_id(ev->channel, "", "channel", true, err)) != TR_OK ||
	    (rc = tr_check_id(ev->msgid, "", "msgid", need_msgid, err)) != TR_OK)
		return rc;
	if (ev->ts < 0) {
		tr_fail(err, "field ts must not be negative");
		return TR_E_INVAL;
	}
	if ((rc = tr_check_id(ev->author.id, "author.", "id", true, err)) != TR_OK ||
	    (rc = tr_check_str(ev->author.name, "author.", "name", 0, TR_EVENT_MAX_NAME, err)) !=
	        TR_OK ||
	    (rc = tr_check_str(ev->author.display, "author.", "display", 0, TR_EVENT_MAX_NAME,
	                       err)) != TR_OK ||
	    (rc = tr_check_str(ev->author.avatar, "author.", "avatar", 0, TR_EVENT_MAX_NAME,
	                       err)) != TR_OK ||
	    (rc = tr_check_str(ev->text, "", "text", 0, TR_EVENT_MAX_TEXT, err)) != TR_OK ||
	    (rc = tr_validate_attachments(ev, err)) != TR_OK ||
	    (rc = tr_check_id(ev->reply_to, "", "reply_to", false, err)) != TR_OK ||
	    (rc = tr_check_id(ev->thread, "", "thread", false, err)) != TR_OK ||
	    (rc = tr_check_id(ev->target, "", "target", need_target, err)) != TR_OK ||
	    (rc = tr_check_str(ev->reaction, "", "reaction",
	                       TR_CK_ID | (need_reaction ? TR_CK_REQUIRED : 0), TR_EVENT_MAX_NAME,
	                       err)) != TR_OK)
		return rc;
	/* An in event carrying a dest is still checked: the encoder will emit it. */
	if (want_dest || ev->has_dest)
		return tr_validate_dest(ev, err);
	return TR_OK;
}

static int tr_decode_attachments(const json_t *root, struct tr_event *ev, char *err)
{
	json_t *arr = tr_jget(root, "attachments");
	if (!arr)
		return TR_OK;
	if (!json_is_array(arr)) {
		tr_fail(err, "field attachments must be an array");
		return TR_E_INVAL;
	}
	size_t n = json_array_size(arr);
	if (n > TR_EVENT_MAX_ATTACHMENTS) {
		tr_fail(err, "field attachments over %d entries", TR_EVENT_MAX_ATTACHMENTS);
		return TR_E_TOOBIG;
	}
	if (!n)
		return TR_OK;
	ev->attachments = tr_xcalloc(n, sizeof(*ev->attachments));
	ev->n_attachments = n;
	for (size_t i = 0; i < n; i++)
		ev->attachments[i].size = -1;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_array_get(arr, i);
		struct tr_attachment *a = &ev->attachments[i];
		char prefix[48];
		bool has_size = false;
		int rc;
		snprintf(prefix, sizeof(prefix), "attachments[%zu].", i);
		if (!json_is_object(o)) {
			tr_fail(err, "field attachments[%zu] must be an object", i);
			return TR_E_INVAL;
		}
		if ((rc = tr_jstr(o, prefix, "url", &a->url, err)) != TR_OK ||
		    (rc = tr_jstr(o, prefix, "name", &a->name, err)) != TR_OK ||
		    (rc = tr_jstr(o, prefix, "mime", &a->mime, err)) != TR_OK ||
		    (rc = tr_jint(o, prefix, "size", false, &has_size, &a->size, err)) != TR_OK)
			return rc;
		if (has_size && a->size < 0) {
			tr_fail(err, "field %ssize must not be negative", prefix);
			return TR_E_INVAL;
		}
		if (!has_size)
			a->size = -1;
	}
	return TR_OK;
}

static int tr_decode_dest(const json_t *root, struct tr_event *ev, char *err)
{
	json_t *d = NULL;
	int rc = tr_jstr(root, "", "room", &ev->room, err);
	if (rc == TR_OK)
		rc = tr_jobj(root, "dest", false, &d, err);
	if (rc != TR_OK || !d)
		return rc;
	ev->has_dest = true;
	if ((rc = tr_jstr(d, "dest.", "connector", &ev->dest.connector, err)) != TR_OK ||
	    (rc = tr_jstr(d, "dest.", "channel", &ev->dest.channel, err)) != TR_OK ||
	    (rc = tr_jstr(d, "dest.", "reply_to", &ev->dest.reply_to, err)) != TR_OK ||
	    (rc = tr_jstr(d, "dest.", "thread", &ev->dest.thread, err)) != TR_OK ||
	    (rc = tr_jstr(d, "dest.", "target", &ev->dest.target, err)) != TR_OK)
		return rc;
	return TR_OK;
}

int tr_event_decode(const void *payload, size_t len, bool want_dest, struct tr_event *ev,
                    char err[TR_ERR_LEN])
{
	json_t *root = NULL, *author = NULL;
	char *type = NULL;
	bool present = false;
	int rc;
	if (!ev) {
		tr_fail(err, "no event");
		return TR_E_INVAL;
	}
	memset(ev, 0, sizeof(*ev));
	if ((rc = tr_json_parse(payload, len, &root, err)) != TR_OK)
		return rc;
	ev->json = root;
	if ((rc = tr_jversion(root, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "id", &ev->id, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "type", &type, err)) != TR_OK)
		goto out;
	if (!type) {
		tr_fail(err, "missing field type");
		rc = TR_E_INVAL;
		goto out;
	}
	if (tr_event_type_parse(type, &ev->type) != TR_OK) {
		tr_fail(err, "field type has an unknown value");
		rc = TR_E_INVAL;
		goto out;
	}
	if ((rc = tr_jstr(root, "", "connector", &ev->connector, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "network", &ev->network, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "channel", &ev->channel, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "msgid", &ev->msgid, err)) != TR_OK ||
	    (rc = tr_jint(root, "", "ts", true, &present, &ev->ts, err)) != TR_OK ||
	    (rc = tr_jobj(root, "author", true, &author, err)) != TR_OK ||
	    (rc = tr_jstr(author, "author.", "id", &ev->author.id, err)) != TR_OK ||
	    (rc = tr_jstr(author, "author.", "name", &ev->author.name, err)) != TR_OK ||
	    (rc = tr_jstr(author, "author.", "display", &ev->author.display, err)) != TR_OK ||
	    (rc = tr_jstr(author, "author.", "avatar", &ev->author.avatar, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "text", &ev->text, err)) != TR_OK ||
	    (rc = tr_decode_attachments(root, ev, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "reply_to", &ev->reply_to, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "thread", &ev->thread, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "target", &ev->target, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "reaction", &ev->reaction, err)) != TR_OK ||
	    (rc = tr_jbool(root, "", "removed", false, &ev->removed, err)) != TR_OK)
		goto out;
	/* room and dest mean nothing in an in event: they stay in ev->json only, and the encoder
	 * drops them unless has_dest is set. */
	if (want_dest && (rc = tr_decode_dest(root, ev, err)) != TR_OK)
		goto out;
	rc = tr_event_validate(ev, want_dest, err);
out:
	free(type);
	if (rc != TR_OK)
		tr_event_cleanup(ev);
	return rc;
}

static bool tr_encode_attachments(json_t *obj, const struct tr_event *ev)
{
	if (!ev->n_attachments) {
		json_object_del(obj, "attachments");
		return true;
	}
	/* Unknown members of each attachment survive when the list kept its length; a list
	 * the caller reshaped is rebuilt from the struct. */
	json_t *arr = json_object_get(obj, "attachments");
	if (!json_is_array(arr) || json_array_size(arr) != ev->n_attachments) {
		arr = json_array();
		if (json_object_set_new(obj, "attachments", arr) != 0)
			return false;
	}
	bool ok = true;
	for (size_t i = 0; ok && i < ev->n_attachments; i++) {
		const struct tr_attachment *a = &ev->attachments[i];
		json_t *o = json_array_get(arr, i);
		if (!o) {
			o = json_object();
			ok = json_array_append_new(arr, o) == 0;
		} else if (!json_is_object(o)) {
			o = json_object();
			ok = json_array_set_new(arr, i, o) == 0;
		}
		ok = ok && tr_jset_str(o, "url", a->url) && tr_jset_str(o, "name", a->name) &&
		     tr_jset_str(o, "mime", a->mime);
		if (ok && a->size >= 0)
			ok = tr_jset_int(o, "size", a->size);
		else if (ok)
			json_object_del(o, "size");
	}
	return ok;
}

static bool tr_encode_dest(json_t *obj, const struct tr_event *ev)
{
	if (!ev->has_dest) {
		json_object_del(obj, "room");
		json_object_del(obj, "dest");
		return true;
	}
	if (!tr_jset_str(obj, "room", ev->room))
		return false;
	json_t *d = tr_jchild(obj, "dest");
	return d && tr_jset_str(d, "connector", ev->dest.connector) &&
	       tr_jset_str(d, "channel", ev->dest.channel) &&
	       tr_jset_str(d, "reply_to", ev->dest.reply_to) &&
	       tr_jset_str(d, "thread", ev->dest.thread) &&
	       tr_jset_str(d, "target", ev->dest.target);
}

int tr_event_encode(const struct tr_event *ev, char **out, char err[TR_ERR_LEN])
{
	json_t *obj = NULL, *author = NULL;
	int rc;
	if (!out) {
		tr_fail(err, "no output");
		return TR_E_INVAL;
	}
	*out = NULL;
	if (tr_event_validate(ev, ev ? ev->has_dest : false, err) != TR_OK)
		return TR_E_INVAL;
	/* Starting from a copy of the decoded object keeps unknown fields and their order. */
	obj = json_is_object(ev->json) ? json_deep_copy(ev->json) : json_object();
	rc = TR_E_NOMEM;
	if (!obj)
		goto nomem;
	bool ok = tr_jset_int(obj, "v", 1) && tr_jset_str(obj, "id", ev->id) &&
	          tr_jset_str(obj, "type", tr_event_type_name(ev->type)) &&
	          tr_jset_str(obj, "connector", ev->connector) &&
	          tr_jset_str(obj, "network", ev->network) &&
	          tr_jset_str(obj, "channel", ev->channel) &&
	          tr_jset_str(obj, "msgid", ev->msgid) && tr_jset_int(obj, "ts", ev->ts);
	ok = ok && (author = tr_jchild(obj, "author")) != NULL &&
	     tr_jset_str(author, "id", ev->author.id) &&
	     tr_jset_str(author, "name", ev->author.name) &&
	     tr_jset_str(author, "display", ev->author.display) &&
	     tr_jset_str(author, "avatar", ev->author.avatar);
	ok = ok && tr_jset_str(obj, "text", ev->text) && tr_encode_attachments(obj, ev) &&
	     tr_jset_str(obj, "reply_to", ev->reply_to) && tr_jset_str(obj, "thread", ev->thread) &&
	     tr_jset_str(obj, "target", ev->target) && tr_jset_str(obj, "reaction", ev->reaction);
	/* "removed": false is the default; keep it only where the original had it. */
	if (ok && (ev->removed || json_object_get(obj, "removed")))
		ok = json_object_set_new(obj, "removed", json_boolean(ev->removed)) == 0;
	ok = ok && tr_encode_dest(obj, ev);
	if (!ok)
		goto nomem;
	rc = tr_json_dump(obj, out, err);
	goto out;
nomem:
	tr_fail(err, "out of memory encoding event");
out:
	json_decref(obj);
	return rc;
}

/* ---- ack ---- */

void tr_ack_cleanup(struct tr_ack *ack)
{
	if (!ack)
		return;
	free(ack->id);
	free(ack->dest_connector);
	free(ack->dest_channel);
	free(ack->msgid);
	free(ack->error);
	free(ack->detail);
	memset(ack, 0, sizeof(*ack));
}

static int tr_ack_validate(const struct tr_ack *ack, char *err)
{
	int rc;
	if ((rc = tr_check_id(ack->id, "", "id", true, err)) != TR_OK ||
	    (rc = tr_check_name_field(ack->dest_connector, "dest.", "connector", err)) != TR_OK ||
	    (rc = tr_check_id(ack->dest_channel, "dest.", "channel", true, err)) != TR_OK ||
	    (rc = tr_check_id(ack->msgid, "", "msgid", false, err)) != TR_OK ||
	    (rc = tr_check_id(ack->error, "", "error", !ack->ok, err)) != TR_OK ||
	    (rc = tr_check_str(ack->detail, "", "detail", 0, TR_DETAIL_MAX, err)) != TR_OK)
		return rc;
	return TR_OK;
}

int tr_ack_decode(const void *payload, size_t len, struct tr_ack *ack, char err[TR_ERR_LEN])
{
	json_t *root = NULL, *dest = NULL;
	int rc;
	if (!ack) {
		tr_fail(err, "no ack");
		return TR_E_INVAL;
	}
	memset(ack, 0, sizeof(*ack));
	if ((rc = tr_json_parse(payload, len, &root, err)) != TR_OK)
		return rc;
	if ((rc = tr_jversion(root, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "id", &ack->id, err)) != TR_OK ||
	    (rc = tr_jobj(root, "dest", true, &dest, err)) != TR_OK ||
	    (rc = tr_jstr(dest, "dest.", "connector", &ack->dest_connector, err)) != TR_OK ||
	    (rc = tr_jstr(dest, "dest.", "channel", &ack->dest_channel, err)) != TR_OK ||
	    (rc = tr_jbool(root, "", "ok", true, &ack->ok, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "msgid", &ack->msgid, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "error", &ack->error, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "detail", &ack->detail, err)) != TR_OK)
		goto out;
	rc = tr_ack_validate(ack, err);
out:
	json_decref(root);
	if (rc != TR_OK)
		tr_ack_cleanup(ack);
	return rc;
}

int tr_ack_encode(const struct tr_ack *ack, char **out)
{
	json_t *obj = NULL, *dest = NULL;
	int rc = TR_E_INVAL;
	if (!out)
		return TR_E_INVAL;
	*out = NULL;
	if (!ack || tr_ack_validate(ack, NULL) != TR_OK)
		return TR_E_INVAL;
	rc = TR_E_NOMEM;
	obj = json_object();
	dest = json_object();
	if (!obj || !dest)
		goto out;
	bool ok = tr_jset_int(obj, "v", 1) && tr_jset_str(obj, "id", ack->id) &&
	          tr_jset_str(dest, "connector", ack->dest_connector) &&
	          tr_jset_str(dest, "channel", ack->dest_channel) &&
	          json_object_set(obj, "dest", dest) == 0 &&
	          json_object_set_new(obj, "ok", json_boolean(ack->ok)) == 0 &&
	          tr_jset_str(obj, "msgid", ack->msgid) && tr_jset_str(obj, "error", ack->error) &&
	          tr_jset_str(obj, "detail", ack->detail);
	if (ok)
		rc = tr_json_dump(obj, out, NULL);
out:
	json_decref(dest);
	json_decref(obj);
	return rc;
}

/* ---- status ---- */

void tr_status_cleanup(struct tr_status *st)
{
	if (!st)
		return;
	free(st->connector);
	free(st->network);
	free(st->detail);
	memset(st, 0, sizeof(*st));
}

static int tr_status_validate(const struct tr_status *st, char *err)
{
	int rc;
	if ((rc = tr_check_name_field(st->connector, "", "connector", err)) != TR_OK ||
	    (rc = tr_check_name_field(st->network, "", "network", err)) != TR_OK)
		return rc;
	if (!tr_state_name(st->state)) {
		tr_fail(err, "field state has an unknown value");
		return TR_E_INVAL;
	}
	if (st->since < 0) {
		tr_fail(err, "field since must not be negative");
		return TR_E_INVAL;
	}
	return tr_check_str(st->detail, "", "detail", 0, TR_DETAIL_MAX, err);
}

int tr_status_decode(const void *payload, size_t len, struct tr_status *st, char err[TR_ERR_LEN])
{
	json_t *root = NULL;
	char *state = NULL;
	bool present = false;
	int rc;
	if (!st) {
		tr_fail(err, "no status");
		return TR_E_INVAL;
	}
	memset(st, 0, sizeof(*st));
	if ((rc = tr_json_parse(payload, len, &root, err)) != TR_OK)
		return rc;
	if ((rc = tr_jversion(root, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "connector", &st->connector, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "network", &st->network, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "state", &state, err)) != TR_OK ||
	    (rc = tr_jint(root, "", "since", true, &present, &st->since, err)) != TR_OK ||
	    (rc = tr_jstr(root, "", "detail", &st->detail, err)) != TR_OK)
		goto out;
	if (!state) {
		tr_fail(err, "missing field state");
		rc = TR_E_INVAL;
		goto out;
	}
	if (tr_state_parse(state, &st->state) != TR_OK) {
		tr_fail(err, "field state has an unknown value");
		rc = TR_E_INVAL;
		goto out;
	}
	rc = tr_status_validate(st, err);
out:
	free(state);
	json_decref(root);
	if (rc != TR_OK)
		tr_status_cleanup(st);
	return rc;
}

int tr_status_encode(const struct tr_status *st, char **out)
{
	json_t *obj = NULL;
	int rc = TR_E_NOMEM;
	if (!out)
		return TR_E_INVAL;
	*out = NULL;
	if (!st || tr_status_validate(st, NULL) != TR_OK)
		return TR_E_INVAL;
	obj = json_object();
	if (obj && tr_jset_int(obj, "v", 1) && tr_jset_str(obj, "connector", st->connector) &&
	    tr_jset_str(obj, "network", st->network) &&
	    tr_jset_str(obj, "state", tr_state_name(st->state)) &&
	    tr_jset_int(obj, "since", st->since) && tr_jset_str(obj, "detail", st->detail))
		rc = tr_json_dump(obj, out, NULL);
	json_decref(obj);
	return rc;
}

/* ---- channels ---- */

void tr_channels_free(char **channels)
{
	for (size_t i = 0; channels && channels[i]; i++)
		free(channels[i]);
	free(channels);
}

int tr_channels_decode(const void *payload, size_t len, char ***channels, size_t *n,
                       char err[TR_ERR_LEN])
{
	json_t *root = NULL, *arr = NULL;
	char **list = NULL;
	size_t count = 0;
	int rc;
	if (!channels || !n) {
		tr_fail(err, "no output");
		return TR_E_INVAL;
	}
	*channels = NULL;
	*n = 0;
	if ((rc = tr_json_parse(payload, len, &root, err)) != TR_OK)
		return rc;
	if ((rc = tr_jversion(root, err)) != TR_OK)
		goto out;
	rc = TR_E_INVAL;
	arr = tr_jget(root, "channels");
	if (!arr) {
		tr_fail(err, "missing field channels");
		goto out;
	}
	if (!json_is_array(arr)) {
		tr_fail(err, "field channels must be an array");
		goto out;
	}
	count = json_array_size(arr);
	if (count > TR_EVENT_MAX_CHANNELS) {
		tr_fail(err, "field channels over %d entries", TR_EVENT_MAX_CHANNELS);
		rc = TR_E_TOOBIG;
		goto out;
	}
	list = tr_xcalloc(count + 1, sizeof(*list));
	for (size_t i = 0; i < count; i++) {
		json_t *v = json_array_get(arr, i);
		char key[32];
		snprintf(key, sizeof(key), "[%zu]", i);
		if (!json_is_string(v)) {
			tr_fail(err, "field channels%s must be a string", key);
			rc = TR_E_INVAL;
			goto out;
		}
		list[i] = tr_xstrndup(json_string_value(v), json_string_length(v));
		if ((rc = tr_check_id(list[i], "channels", key, true, err)) != TR_OK)
			goto out;
	}
	*channels = list;
	*n = count;
	list = NULL;
	rc = TR_OK;
out:
	tr_channels_free(list);
	json_decref(root);
	return rc;
}

int tr_channels_encode(const char *const *channels, size_t n, char **out)
{
	json_t *obj = NULL, *arr = NULL;
	int rc = TR_E_INVAL;
	if (!out)
		return TR_E_INVAL;
	*out = NULL;
	if (n > TR_EVENT_MAX_CHANNELS || (n && !channels))
		return TR_E_INVAL;
	for (size_t i = 0; i < n; i++)
		if (tr_check_id(channels[i], "channels", "", true, NULL) != TR_OK)
			return TR_E_INVAL;
	rc = TR_E_NOMEM;
	obj = json_object();
	arr = json_array();
	if (!obj || !arr)
		goto out;
	bool ok = tr_jset_int(obj, "v", 1) && json_object_set(obj, "channels", arr) == 0;
	for (size_t i = 0; ok && i < n; i++)
		ok = json_array_append_new(arr, json_string(channels[i])) == 0;
	if (ok)
		rc = tr_json_dump(obj, out, NULL);
out:
	json_decref(arr);
	json_decref(obj);
	return rc;
}
