/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/event.c: every v1 rule of DESIGN §2 has a passing and a failing case.
 * Failing events are built by mutating one valid event (a path and a new value), so each case
 * differs from a valid payload in exactly one way. Also runs the JSON files under
 * tests/fixtures/events/ (valid/ must decode, invalid/ must not; out-*.json are out events). */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "event.h"
#include "log.h"

#define FIXTURES "tests/fixtures/events"

/* A full out event; in-event cases decode it with want_dest false, where room/dest are ignored. */
static const char base_json[] =
    "{\"v\":1,\"id\":\"slack-cotech:message:1503435956.000247\",\"type\":\"message\","
    "\"connector\":\"slack-cotech\",\"network\":\"slack\",\"channel\":\"C024BE91L\","
    "\"msgid\":\"1503435956.000247\",\"ts\":1732500000123,"
    "\"author\":{\"id\":\"U061F7AUR\",\"name\":\"alice\",\"display\":\"Alice Smith\","
    "\"avatar\":\"https://example.org/alice.png\"},"
    "\"text\":\"Hello **world** \\u00e9\\n\","
    "\"attachments\":[{\"url\":\"https://example.org/cat.png\",\"name\":\"cat.png\","
    "\"mime\":\"image/png\",\"size\":52311}],"
    "\"reply_to\":\"1503435950.000100\",\"thread\":\"1503435950.000099\","
    "\"room\":\"cotech\",\"dest\":{\"connector\":\"matrix-main\","
    "\"channel\":\"!abc123:example.org\",\"reply_to\":\"$ev1\",\"thread\":\"$ev0\","
    "\"target\":\"$ev2\"}}";

/* ---- helpers ---- */

/* A JSON value from text; "@<n><c>" stands for a string of n copies of the character c. */
static json_t *make_value(const char *text)
{
	if (text[0] == '@') {
		char *end = NULL;
		unsigned long n = strtoul(text + 1, &end, 10);
		char *s = tr_xmalloc(n + 1);
		memset(s, *end, n);
		s[n] = '\0';
		json_t *v = json_string(s);
		free(s);
		assert_non_null(v);
		return v;
	}
	json_error_t jerr;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (!v)
		fail_msg("bad test value %s: %s", text, jerr.text);
	return v;
}

/* Sets (value non-NULL) or deletes the member at a dotted path ("author.id",
 * "attachments.0.url"). */
static void mutate(json_t *root, const char *path, const char *value)
{
	char buf[128];
	snprintf(buf, sizeof(buf), "%s", path);
	json_t *cur = root;
	char *part = buf;
	for (;;) {
		char *dot = strchr(part, '.');
		if (dot)
			*dot = '\0';
		bool is_index = json_is_array(cur);
		size_t idx = is_index ? strtoul(part, NULL, 10) : 0;
		if (!dot) {
			if (!value && is_index)
				assert_int_equal(json_array_remove(cur, idx), 0);
			else if (!value)
				json_object_del(cur, part);
			else if (is_index)
				assert_int_equal(json_array_set_new(cur, idx, make_value(value)),
				                 0);
			else
				assert_int_equal(json_object_set_new(cur, part, make_value(value)),
				                 0);
			return;
		}
		cur = is_index ? json_array_get(cur, idx) : json_object_get(cur, part);
		assert_non_null(cur);
		part = dot + 1;
	}
}

struct op {
	const char *path;
	const char *value; /* NULL: delete */
};

/* The base event with up to three changes, as a compact JSON string (caller frees). */
static char *mutated(const struct op *ops, size_t n_ops)
{
	json_error_t jerr;
	json_t *root = json_loads(base_json, 0, &jerr);
	assert_non_null(root);
	for (size_t i = 0; i < n_ops && ops[i].path; i++)
		mutate(root, ops[i].path, ops[i].value);
	char *s = json_dumps(root, JSON_COMPACT);
	assert_non_null(s);
	json_decref(root);
	return s;
}

static int decode_str(const char *s, bool want_dest, struct tr_event *ev, char *err)
{
	return tr_event_decode(s, strlen(s), want_dest, ev, err);
}

static void assert_str_eq_null(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_event_equal(const struct tr_event *a, const struct tr_event *b)
{
	assert_str_eq_null(a->id, b->id);
	assert_int_equal(a->type, b->type);
	assert_str_eq_null(a->connector, b->connector);
	assert_str_eq_null(a->network, b->network);
	assert_str_eq_null(a->channel, b->channel);
	assert_str_eq_null(a->msgid, b->msgid);
	assert_int_equal(a->ts, b->ts);
	assert_str_eq_null(a->author.id, b->author.id);
	assert_str_eq_null(a->author.name, b->author.name);
	assert_str_eq_null(a->author.display, b->author.display);
	assert_str_eq_null(a->author.avatar, b->author.avatar);
	assert_str_eq_null(a->text, b->text);
	assert_int_equal(a->n_attachments, b->n_attachments);
	for (size_t i = 0; i < a->n_attachments; i++) {
		assert_str_eq_null(a->attachments[i].url, b->attachments[i].url);
		assert_str_eq_null(a->attachments[i].name, b->attachments[i].name);
		assert_str_eq_null(a->attachments[i].mime, b->attachments[i].mime);
		assert_int_equal(a->attachments[i].size, b->attachments[i].size);
	}
	assert_str_eq_null(a->reply_to, b->reply_to);
	assert_str_eq_null(a->thread, b->thread);
	assert_str_eq_null(a->target, b->target);
	assert_str_eq_null(a->reaction, b->reaction);
	assert_int_equal(a->removed, b->removed);
	assert_str_eq_null(a->room, b->room);
	assert_int_equal(a->has_dest, b->has_dest);
	assert_str_eq_null(a->dest.connector, b->dest.connector);
	assert_str_eq_null(a->dest.channel, b->dest.channel);
	assert_str_eq_null(a->dest.reply_to, b->dest.reply_to);
	assert_str_eq_null(a->dest.thread, b->dest.thread);
	assert_str_eq_null(a->dest.target, b->dest.target);
}

/* decode -> encode -> decode gives the same struct. */
static void assert_round_trip(const struct tr_event *ev, bool want_dest)
{
	char err[TR_ERR_LEN] = "";
	char *out = NULL;
	struct tr_event again;
	int rc = tr_event_encode(ev, &out, err);
	if (rc != TR_OK)
		fail_msg("encode: %s: %s", tr_strerror(rc), err);
	rc = decode_str(out, want_dest, &again, err);
	if (rc != TR_OK)
		fail_msg("decode of encoded: %s: %s", tr_strerror(rc), err);
	assert_event_equal(ev, &again);
	tr_event_cleanup(&again);
	free(out);
}

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s (tests run from the repository root)", path);
	char *data = tr_xmalloc(TR_EVENT_MAX_PAYLOAD + 2);
	*len = fread(data, 1, TR_EVENT_MAX_PAYLOAD + 1, f);
	fclose(f);
	data[*len] = '\0';
	return data;
}

/* ---- names ---- */

static void test_type_names(void **state)
{
	(void)state;
	static const char *const names[] = {"message", "edit",  "delete", "reaction",
	                                    "join",    "leave", "topic"};
	assert_int_equal(TR_ARRAY_LEN(names), TR_EV__COUNT);
	for (size_t i = 0; i < TR_ARRAY_LEN(names); i++) {
		enum tr_event_type t = TR_EV__COUNT;
		assert_string_equal(tr_event_type_name((enum tr_event_type)i), names[i]);
		assert_int_equal(tr_event_type_parse(names[i], &t), TR_OK);
		assert_int_equal(t, i);
	}
	enum tr_event_type t = TR_EV_JOIN;
	static const char *const bad[] = {"", "Message", "messages", "mess", " message"};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++)
		assert_int_equal(tr_event_type_parse(bad[i], &t), TR_E_INVAL);
	assert_int_equal(tr_event_type_parse(NULL, &t), TR_E_INVAL);
	assert_int_equal(t, TR_EV_JOIN);
	assert_null(tr_event_type_name(TR_EV__COUNT));
	assert_null(tr_event_type_name((enum tr_event_type) - 1));

	assert_string_equal(tr_state_name(TR_STATE_STARTING), "starting");
	assert_string_equal(tr_state_name(TR_STATE_ONLINE), "online");
	assert_string_equal(tr_state_name(TR_STATE_DEGRADED), "degraded");
	assert_string_equal(tr_state_name(TR_STATE_OFFLINE), "offline");
	assert_null(tr_state_name((enum tr_state)4));
	assert_null(tr_state_name((enum tr_state) - 1));
}

static void test_connector_name(void **state)
{
	(void)state;
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
	    {"slack-cotech", true},
	    {"a", true},
	    {"0", true},
	    {"irc_libera-2", true},
	    {"9-_", true},
	    {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789a", true},   /* 63 */
	    {"abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz0123456789ab", false}, /* 64 */
	    {"", false},
	    {"-slack", false},
	    {"_slack", false},
	    {"Slack", false},
	    {"slack cotech", false},
	    {"slack.cotech", false},
	    {"slack/cotech", false},
	    {"slack+", false},
	    {"sl\xc3\xa4"
	     "ck",
	     false},
	    {"slack\n", false},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		if (tr_connector_name_valid(cases[i].s) != cases[i].ok)
			fail_msg("case %zu \"%s\": expected %d", i, cases[i].s, cases[i].ok);
	}
	assert_false(tr_connector_name_valid(NULL));
}

static void test_now_ms(void **state)
{
	(void)state;
	int64_t a = tr_now_ms();
	int64_t b = tr_now_ms();
	assert_true(a > INT64_C(1600000000000));  /* after 2020 */
	assert_true(a < INT64_C(32503680000000)); /* before 3000: milliseconds, not ns */
	assert_true(b >= a - 1000);               /* CLOCK_REALTIME may step, a little */
}

/* ---- valid events ---- */

static void test_decode_full_message(void **state)
{
	(void)state;
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	int rc = decode_str(base_json, false, &ev, err);
	if (rc != TR_OK)
		fail_msg("%s", err);
	assert_string_equal(ev.id, "slack-cotech:message:1503435956.000247");
	assert_int_equal(ev.type, TR_EV_MESSAGE);
	assert_string_equal(ev.connector, "slack-cotech");
	assert_string_equal(ev.network, "slack");
	assert_string_equal(ev.channel, "C024BE91L");
	assert_string_equal(ev.msgid, "1503435956.000247");
	assert_int_equal(ev.ts, INT64_C(1732500000123));
	assert_string_equal(ev.author.id, "U061F7AUR");
	assert_string_equal(ev.author.name, "alice");
	assert_string_equal(ev.author.display, "Alice Smith");
	assert_string_equal(ev.author.avatar, "https://example.org/alice.png");
	assert_string_equal(ev.text, "Hello **world** \xc3\xa9\n");
	assert_int_equal(ev.n_attachments, 1);
	assert_string_equal(ev.attachments[0].url, "https://example.org/cat.png");
	assert_string_equal(ev.attachments[0].name, "cat.png");
	assert_string_equal(ev.attachments[0].mime, "image/png");
	assert_int_equal(ev.attachments[0].size, 52311);
	assert_string_equal(ev.reply_to, "1503435950.000100");
	assert_string_equal(ev.thread, "1503435950.000099");
	assert_null(ev.target);
	assert_null(ev.reaction);
	assert_false(ev.removed);
	/* An in event ignores room and dest. */
	assert_null(ev.room);
	assert_false(ev.has_dest);
	assert_null(ev.dest.connector);
	assert_non_null(ev.json);
	assert_true(json_is_object(ev.json));
	tr_event_cleanup(&ev);
	assert_null(ev.id);
	assert_null(ev.json);

	rc = decode_str(base_json, true, &ev, err);
	if (rc != TR_OK)
		fail_msg("%s", err);
	assert_string_equal(ev.room, "cotech");
	assert_true(ev.has_dest);
	assert_string_equal(ev.dest.connector, "matrix-main");
	assert_string_equal(ev.dest.channel, "!abc123:example.org");
	assert_string_equal(ev.dest.reply_to, "$ev1");
	assert_string_equal(ev.dest.thread, "$ev0");
	assert_string_equal(ev.dest.target, "$ev2");
	tr_event_cleanup(&ev);
}

struct valid_case {
	const char *name;
	const char *json;
	bool want_dest;
	enum tr_event_type type;
	const char *msgid, *target, *reaction, *text;
	bool removed;
	size_t n_attachments;
};

#define HEAD(type)                                                                                 \
	"{\"v\":1,\"id\":\"x:" type ":1\",\"type\":\"" type "\",\"connector\":\"irc-libera\","
#define BODY "\"network\":\"irc\",\"channel\":\"#cotech\",\"ts\":0,\"author\":{\"id\":\"bob\"}"

static const struct valid_case valid_cases[] = {
    {"message minimal", HEAD("message") BODY ",\"msgid\":\"m1\"}", false, TR_EV_MESSAGE, "m1", NULL,
     NULL, NULL, false, 0},
    {"message empty text", HEAD("message") BODY ",\"msgid\":\"m1\",\"text\":\"\"}", false,
     TR_EV_MESSAGE, "m1", NULL, NULL, "", false, 0},
    {"edit", HEAD("edit") BODY ",\"msgid\":\"m1\",\"target\":\"m0\",\"text\":\"new\"}", false,
     TR_EV_EDIT, "m1", "m0", NULL, "new", false, 0},
    {"delete", HEAD("delete") BODY ",\"target\":\"m0\"}", false, TR_EV_DELETE, NULL, "m0", NULL,
     NULL, false, 0},
    {"reaction", HEAD("reaction") BODY ",\"target\":\"m0\",\"reaction\":\"\xf0\x9f\x91\x8d\"}",
     false, TR_EV_REACTION, NULL, "m0", "\xf0\x9f\x91\x8d", NULL, false, 0},
    {"reaction removed",
     HEAD("reaction") BODY ",\"target\":\"m0\",\"reaction\":\":+1:\",\"removed\":true}", false,
     TR_EV_REACTION, NULL, "m0", ":+1:", NULL, true, 0},
    {"join", HEAD("join") BODY "}", false, TR_EV_JOIN, NULL, NULL, NULL, NULL, false, 0},
    {"leave", HEAD("leave") BODY ",\"removed\":false}", false, TR_EV_LEAVE, NULL, NULL, NULL, NULL,
     false, 0},
    {"topic", HEAD("topic") BODY ",\"text\":\"new topic\"}", false, TR_EV_TOPIC, NULL, NULL, NULL,
     "new topic", false, 0},
    {"nulls are absent",
     HEAD("join") BODY ",\"msgid\":null,\"text\":null,\"attachments\":null,\"reply_to\":null,"
                       "\"thread\":null,\"target\":null,\"reaction\":null,\"removed\":null}",
     false, TR_EV_JOIN, NULL, NULL, NULL, NULL, false, 0},
    {"empty attachments", HEAD("message") BODY ",\"msgid\":\"m\",\"attachments\":[]}", false,
     TR_EV_MESSAGE, "m", NULL, NULL, NULL, false, 0},
    {"attachment url only",
     HEAD("message") BODY ",\"msgid\":\"m\",\"attachments\":[{\"url\":\"u\",\"size\":null},"
                          "{\"url\":\"v\",\"size\":0}]}",
     false, TR_EV_MESSAGE, "m", NULL, NULL, NULL, false, 2},
    {"unknown fields ignored",
     HEAD("message") BODY ",\"msgid\":\"m\",\"x\":[1,{\"y\":null}],\"v2\":{\"a\":\"b\"}}", false,
     TR_EV_MESSAGE, "m", NULL, NULL, NULL, false, 0},
    {"dest junk in an in event", HEAD("join") BODY ",\"room\":5,\"dest\":\"nowhere\"}", false,
     TR_EV_JOIN, NULL, NULL, NULL, NULL, false, 0},
    {"out join",
     HEAD("join") BODY ",\"room\":\"r\",\"dest\":{\"connector\":\"m\",\"channel\":\"!a:b\"}}", true,
     TR_EV_JOIN, NULL, NULL, NULL, NULL, false, 0},
    {"whitespace around", " \n\t" HEAD("join") BODY "} \r\n", false, TR_EV_JOIN, NULL, NULL, NULL,
     NULL, false, 0},
};

static void test_decode_valid_types(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(valid_cases); i++) {
		const struct valid_case *c = &valid_cases[i];
		struct tr_event ev;
		char err[TR_ERR_LEN] = "";
		int rc = decode_str(c->json, c->want_dest, &ev, err);
		if (rc != TR_OK)
			fail_msg("%s: %s: %s", c->name, tr_strerror(rc), err);
		assert_int_equal(ev.type, c->type);
		assert_string_equal(ev.connector, "irc-libera");
		assert_string_equal(ev.network, "irc");
		assert_string_equal(ev.channel, "#cotech");
		assert_string_equal(ev.author.id, "bob");
		assert_int_equal(ev.ts, 0);
		assert_str_eq_null(ev.msgid, c->msgid);
		assert_str_eq_null(ev.target, c->target);
		assert_str_eq_null(ev.reaction, c->reaction);
		assert_str_eq_null(ev.text, c->text);
		assert_int_equal(ev.removed, c->removed);
		assert_int_equal(ev.n_attachments, c->n_attachments);
		assert_int_equal(ev.has_dest, c->want_dest);
		for (size_t k = 0; k < ev.n_attachments; k++)
			assert_int_equal(ev.attachments[k].size, k == 0 ? -1 : 0);
		assert_round_trip(&ev, c->want_dest);
		tr_event_cleanup(&ev);
	}
}

/* Limits are inclusive: exactly at the limit decodes. */
static void test_decode_at_limits(void **state)
{
	(void)state;
	char id_max[16], name_max[16], text_max[16], room_max[16];
	snprintf(id_max, sizeof(id_max), "@%da", TR_EVENT_MAX_ID);
	snprintf(name_max, sizeof(name_max), "@%db", TR_EVENT_MAX_NAME);
	snprintf(text_max, sizeof(text_max), "@%dc", TR_EVENT_MAX_TEXT);
	snprintf(room_max, sizeof(room_max), "@64r");
	const struct op ops[] = {
	    {"channel", id_max}, {"author.display", name_max},    {"text", text_max},
	    {"room", room_max},  {"attachments.0.url", name_max},
	};
	json_error_t jerr;
	json_t *root = json_loads(base_json, 0, &jerr);
	for (size_t i = 0; i < TR_ARRAY_LEN(ops); i++)
		mutate(root, ops[i].path, ops[i].value);
	json_t *arr = json_object_get(root, "attachments");
	while (json_array_size(arr) < TR_EVENT_MAX_ATTACHMENTS)
		json_array_append_new(arr, json_pack("{s:s}", "url", "https://example.org/x"));
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	int rc = decode_str(s, true, &ev, err);
	if (rc != TR_OK)
		fail_msg("%s: %s", tr_strerror(rc), err);
	assert_int_equal(strlen(ev.channel), TR_EVENT_MAX_ID);
	assert_int_equal(strlen(ev.text), TR_EVENT_MAX_TEXT);
	assert_int_equal(strlen(ev.room), 64);
	assert_int_equal(ev.n_attachments, TR_EVENT_MAX_ATTACHMENTS);
	assert_round_trip(&ev, true);
	tr_event_cleanup(&ev);
	free(s);
}

/* A payload of exactly TR_EVENT_MAX_PAYLOAD bytes is fine; one more byte is not. */
static void test_decode_payload_limit(void **state)
{
	(void)state;
	size_t base_len = strlen(base_json);
	char *p = tr_xmalloc(TR_EVENT_MAX_PAYLOAD + 2);
	memcpy(p, base_json, base_len);
	memset(p + base_len, ' ', TR_EVENT_MAX_PAYLOAD + 1 - base_len);
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_event_decode(p, TR_EVENT_MAX_PAYLOAD, false, &ev, err), TR_OK);
	tr_event_cleanup(&ev);
	assert_int_equal(tr_event_decode(p, TR_EVENT_MAX_PAYLOAD + 1, false, &ev, err),
	                 TR_E_TOOBIG);
	assert_string_equal(err, "payload over 262144 bytes");
	assert_null(ev.json);
	assert_null(ev.id);
	free(p);
}

/* ---- invalid events, one change from the base ---- */

struct bad_case {
	struct op ops[3];
	bool want_dest;
	int rc;
	const char *err; /* the exact reason */
};

#define IN  false
#define OUT true

static const struct bad_case bad_cases[] = {
    /* v */
    {{{"v", NULL}}, IN, TR_E_INVAL, "missing field v"},
    {{{"v", "null"}}, IN, TR_E_INVAL, "missing field v"},
    {{{"v", "\"1\""}}, IN, TR_E_INVAL, "field v must be an integer"},
    {{{"v", "1.0"}}, IN, TR_E_INVAL, "field v must be an integer"},
    {{{"v", "true"}}, IN, TR_E_INVAL, "field v must be an integer"},
    {{{"v", "2"}}, IN, TR_E_INVAL, "field v must be 1"},
    {{{"v", "0"}}, IN, TR_E_INVAL, "field v must be 1"},
    /* id */
    {{{"id", NULL}}, IN, TR_E_INVAL, "missing field id"},
    {{{"id", "5"}}, IN, TR_E_INVAL, "field id must be a string"},
    {{{"id", "\"\""}}, IN, TR_E_INVAL, "field id is empty"},
    {{{"id", "\"a\\u0001b\""}}, IN, TR_E_INVAL, "field id has a control character"},
    {{{"id", "@1025i"}}, IN, TR_E_TOOBIG, "field id over 1024 bytes"},
    /* type */
    {{{"type", NULL}}, IN, TR_E_INVAL, "missing field type"},
    {{{"type", "1"}}, IN, TR_E_INVAL, "field type must be a string"},
    {{{"type", "\"post\""}}, IN, TR_E_INVAL, "field type has an unknown value"},
    {{{"type", "\"MESSAGE\""}}, IN, TR_E_INVAL, "field type has an unknown value"},
    /* connector and network */
    {{{"connector", NULL}}, IN, TR_E_INVAL, "missing field connector"},
    {{{"connector", "[]"}}, IN, TR_E_INVAL, "field connector must be a string"},
    {{{"connector", "\"Slack\""}}, IN, TR_E_INVAL, "field connector is not a valid name"},
    {{{"connector", "\"-slack\""}}, IN, TR_E_INVAL, "field connector is not a valid name"},
    {{{"connector", "\"slack cotech\""}}, IN, TR_E_INVAL, "field connector is not a valid name"},
    {{{"connector", "\"\""}}, IN, TR_E_INVAL, "field connector is not a valid name"},
    {{{"connector", "@64a"}}, IN, TR_E_INVAL, "field connector is not a valid name"},
    {{{"network", NULL}}, IN, TR_E_INVAL, "missing field network"},
    {{{"network", "{}"}}, IN, TR_E_INVAL, "field network must be a string"},
    {{{"network", "\"Slack!\""}}, IN, TR_E_INVAL, "field network is not a valid name"},
    /* channel */
    {{{"channel", NULL}}, IN, TR_E_INVAL, "missing field channel"},
    {{{"channel", "7"}}, IN, TR_E_INVAL, "field channel must be a string"},
    {{{"channel", "\"\""}}, IN, TR_E_INVAL, "field channel is empty"},
    {{{"channel", "\"#a\\nb\""}}, IN, TR_E_INVAL, "field channel has a control character"},
    {{{"channel", "\"#a\\u001fb\""}}, IN, TR_E_INVAL, "field channel has a control character"},
    {{{"channel", "@1025c"}}, IN, TR_E_TOOBIG, "field channel over 1024 bytes"},
    /* msgid */
    {{{"msgid", NULL}}, IN, TR_E_INVAL, "missing field msgid"},
    {{{"msgid", "null"}}, IN, TR_E_INVAL, "missing field msgid"},
    {{{"type", "\"edit\""}, {"target", "\"m0\""}, {"msgid", NULL}},
     IN,
     TR_E_INVAL,
     "missing field msgid"},
    {{{"msgid", "5"}}, IN, TR_E_INVAL, "field msgid must be a string"},
    {{{"msgid", "\"\""}}, IN, TR_E_INVAL, "field msgid is empty"},
    /* ts */
    {{{"ts", NULL}}, IN, TR_E_INVAL, "missing field ts"},
    {{{"ts", "\"1732500000123\""}}, IN, TR_E_INVAL, "field ts must be an integer"},
    {{{"ts", "1.5"}}, IN, TR_E_INVAL, "field ts must be an integer"},
    {{{"ts", "-1"}}, IN, TR_E_INVAL, "field ts must not be negative"},
    /* author */
    {{{"author", NULL}}, IN, TR_E_INVAL, "missing field author"},
    {{{"author", "\"bob\""}}, IN, TR_E_INVAL, "field author must be an object"},
    {{{"author", "[]"}}, IN, TR_E_INVAL, "field author must be an object"},
    {{{"author.id", NULL}}, IN, TR_E_INVAL, "missing field author.id"},
    {{{"author.id", "42"}}, IN, TR_E_INVAL, "field author.id must be a string"},
    {{{"author.id", "\"\""}}, IN, TR_E_INVAL, "field author.id is empty"},
    {{{"author.name", "5"}}, IN, TR_E_INVAL, "field author.name must be a string"},
    {{{"author.display", "@1025d"}}, IN, TR_E_TOOBIG, "field author.display over 1024 bytes"},
    {{{"author.avatar", "[]"}}, IN, TR_E_INVAL, "field author.avatar must be a string"},
    {{{"author.avatar", "@1025v"}}, IN, TR_E_TOOBIG, "field author.avatar over 1024 bytes"},
    /* text */
    {{{"text", "5"}}, IN, TR_E_INVAL, "field text must be a string"},
    {{{"text", "@65537t"}}, IN, TR_E_TOOBIG, "field text over 65536 bytes"},
    /* attachments */
    {{{"attachments", "{}"}}, IN, TR_E_INVAL, "field attachments must be an array"},
    {{{"attachments", "\"x\""}}, IN, TR_E_INVAL, "field attachments must be an array"},
    {{{"attachments.0", "5"}}, IN, TR_E_INVAL, "field attachments[0] must be an object"},
    {{{"attachments.0.url", NULL}}, IN, TR_E_INVAL, "missing field attachments[0].url"},
    {{{"attachments.0.url", "5"}}, IN, TR_E_INVAL, "field attachments[0].url must be a string"},
    {{{"attachments.0.url", "\"\""}}, IN, TR_E_INVAL, "field attachments[0].url is empty"},
    {{{"attachments.0.url", "@1025u"}},
     IN,
     TR_E_TOOBIG,
     "field attachments[0].url over 1024 bytes"},
    {{{"attachments.0.name", "1"}}, IN, TR_E_INVAL, "field attachments[0].name must be a string"},
    {{{"attachments.0.name", "@1025n"}},
     IN,
     TR_E_TOOBIG,
     "field attachments[0].name over 1024 bytes"},
    {{{"attachments.0.mime", "true"}},
     IN,
     TR_E_INVAL,
     "field attachments[0].mime must be a string"},
    {{{"attachments.0.size", "-1"}},
     IN,
     TR_E_INVAL,
     "field attachments[0].size must not be negative"},
    {{{"attachments.0.size", "\"5\""}},
     IN,
     TR_E_INVAL,
     "field attachments[0].size must be an integer"},
    {{{"attachments.0.size", "1.5"}},
     IN,
     TR_E_INVAL,
     "field attachments[0].size must be an integer"},
    /* reply_to, thread, target, reaction, removed */
    {{{"reply_to", "5"}}, IN, TR_E_INVAL, "field reply_to must be a string"},
    {{{"reply_to", "\"\""}}, IN, TR_E_INVAL, "field reply_to is empty"},
    {{{"thread", "\"a\\u001fb\""}}, IN, TR_E_INVAL, "field thread has a control character"},
    {{{"thread", "@1025h"}}, IN, TR_E_TOOBIG, "field thread over 1024 bytes"},
    {{{"target", "1"}}, IN, TR_E_INVAL, "field target must be a string"},
    {{{"type", "\"edit\""}}, IN, TR_E_INVAL, "missing field target"},
    {{{"type", "\"delete\""}}, IN, TR_E_INVAL, "missing field target"},
    {{{"type", "\"reaction\""}, {"reaction", "\"x\""}}, IN, TR_E_INVAL, "missing field target"},
    {{{"type", "\"reaction\""}, {"target", "\"m0\""}}, IN, TR_E_INVAL, "missing field reaction"},
    {{{"type", "\"reaction\""}, {"target", "\"m0\""}, {"reaction", "\"\""}},
     IN,
     TR_E_INVAL,
     "field reaction is empty"},
    {{{"reaction", "5"}}, IN, TR_E_INVAL, "field reaction must be a string"},
    {{{"removed", "\"yes\""}}, IN, TR_E_INVAL, "field removed must be true or false"},
    {{{"removed", "0"}}, IN, TR_E_INVAL, "field removed must be true or false"},
    /* out events: room and dest */
    {{{"room", NULL}}, OUT, TR_E_INVAL, "missing field room"},
    {{{"room", "5"}}, OUT, TR_E_INVAL, "field room must be a string"},
    {{{"room", "\"\""}}, OUT, TR_E_INVAL, "field room is empty"},
    {{{"room", "@65r"}}, OUT, TR_E_TOOBIG, "field room over 64 bytes"},
    {{{"dest", NULL}}, OUT, TR_E_INVAL, "missing field dest"},
    {{{"dest", "null"}}, OUT, TR_E_INVAL, "missing field dest"},
    {{{"dest", "\"matrix-main\""}}, OUT, TR_E_INVAL, "field dest must be an object"},
    {{{"dest.connector", NULL}}, OUT, TR_E_INVAL, "missing field dest.connector"},
    {{{"dest.connector", "\"Matrix\""}},
     OUT,
     TR_E_INVAL,
     "field dest.connector is not a valid name"},
    {{{"dest.connector", "1"}}, OUT, TR_E_INVAL, "field dest.connector must be a string"},
    {{{"dest.channel", NULL}}, OUT, TR_E_INVAL, "missing field dest.channel"},
    {{{"dest.channel", "\"\""}}, OUT, TR_E_INVAL, "field dest.channel is empty"},
    {{{"dest.reply_to", "5"}}, OUT, TR_E_INVAL, "field dest.reply_to must be a string"},
    {{{"dest.thread", "\"a\\nb\""}}, OUT, TR_E_INVAL, "field dest.thread has a control character"},
    {{{"dest.target", "@1025g"}}, OUT, TR_E_TOOBIG, "field dest.target over 1024 bytes"},
};

static void test_decode_invalid_fields(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(bad_cases); i++) {
		const struct bad_case *c = &bad_cases[i];
		char *s = mutated(c->ops, TR_ARRAY_LEN(c->ops));
		struct tr_event ev;
		char err[TR_ERR_LEN] = "";
		int rc = decode_str(s, c->want_dest, &ev, err);
		if (rc != c->rc || strcmp(err, c->err) != 0)
			fail_msg("case %zu (%s=%s): got %s \"%s\", want %s \"%s\"", i,
			         c->ops[0].path, tr_str(c->ops[0].value), tr_strerror(rc), err,
			         tr_strerror(c->rc), c->err);
		/* A failed decode leaves the event clean. */
		assert_null(ev.json);
		assert_null(ev.id);
		assert_null(ev.attachments);
		assert_null(ev.author.id);
		free(s);
	}
}

/* The same mutations pass once the rule that rejects them does not apply. */
static void test_in_event_ignores_dest(void **state)
{
	(void)state;
	static const struct op ops[] = {{"room", "5"}, {"dest", "\"x\""}};
	char *s = mutated(ops, TR_ARRAY_LEN(ops));
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(decode_str(s, false, &ev, err), TR_OK);
	assert_false(ev.has_dest);
	tr_event_cleanup(&ev);
	assert_int_equal(decode_str(s, true, &ev, err), TR_E_INVAL);
	assert_string_equal(err, "field room must be a string");
	free(s);
}

static void test_decode_too_many_attachments(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *root = json_loads(base_json, 0, &jerr);
	json_t *arr = json_object_get(root, "attachments");
	while (json_array_size(arr) < TR_EVENT_MAX_ATTACHMENTS + 1)
		json_array_append_new(arr, json_pack("{s:s}", "url", "u"));
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(decode_str(s, false, &ev, err), TR_E_TOOBIG);
	assert_string_equal(err, "field attachments over 32 entries");
	assert_null(ev.attachments);
	free(s);
}

/* ---- raw payloads that never reach the field rules ---- */

struct raw_case {
	const char *name;
	const char *data;
	size_t len; /* 0: strlen */
	int rc;
	const char *err_prefix;
};

#define EV_HEAD "{\"v\":1,\"id\":\"i\",\"type\":\"join\",\"connector\":\"c\",\"network\":\"n\","
#define EV_TAIL "\"ts\":1,\"author\":{\"id\":\"a\"}}"
#define EV_OK   EV_HEAD "\"channel\":\"ch\"," EV_TAIL
#define RAW_NUL EV_HEAD "\"channel\":\"a\0b\"," EV_TAIL

static const struct raw_case raw_cases[] = {
    {"empty", "", 0, TR_E_INVAL, "payload is not JSON: unexpected end of input"},
    {"not JSON", "hello", 0, TR_E_INVAL, "payload is not JSON: syntax error"},
    {"truncated", "{\"v\":1,", 0, TR_E_INVAL, "payload is not JSON: unexpected end of input"},
    {"array", "[" EV_OK "]", 0, TR_E_INVAL, "payload must be a JSON object"},
    {"number", "42", 0, TR_E_INVAL, "payload must be a JSON object"},
    {"string", "\"x\"", 0, TR_E_INVAL, "payload must be a JSON object"},
    {"null", "null", 0, TR_E_INVAL, "payload must be a JSON object"},
    {"trailing garbage", EV_OK " x", 0, TR_E_INVAL,
     "payload is not JSON: trailing data after the value"},
    {"two objects", EV_OK EV_OK, 0, TR_E_INVAL,
     "payload is not JSON: trailing data after the value"},
    {"duplicate key", EV_HEAD "\"channel\":\"a\",\"channel\":\"b\"," EV_TAIL, 0, TR_E_INVAL,
     "payload is not JSON: duplicate key"},
    {"duplicate nested key",
     EV_HEAD "\"channel\":\"a\",\"ts\":1,\"author\":{\"id\":\"a\",\"id\":\"b\"}}", 0, TR_E_INVAL,
     "payload is not JSON: duplicate key"},
    {"NUL escape", EV_HEAD "\"channel\":\"a\\u0000b\"," EV_TAIL, 0, TR_E_INVAL,
     "payload is not JSON: NUL character"},
    {"raw NUL byte", RAW_NUL, sizeof(RAW_NUL) - 1, TR_E_INVAL, "payload is not JSON: syntax error"},
    {"invalid UTF-8 byte", EV_HEAD "\"channel\":\"a\xff\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"truncated sequence", EV_HEAD "\"channel\":\"a\xc3\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"overlong slash", EV_HEAD "\"channel\":\"a\xc0\xaf\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"overlong 3-byte", EV_HEAD "\"channel\":\"a\xe0\x80\xaf\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"encoded surrogate", EV_HEAD "\"channel\":\"a\xed\xa0\x80\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"above U+10FFFF", EV_HEAD "\"channel\":\"a\xf4\x90\x80\x80\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"invalid UTF-8 in a key", EV_HEAD "\"\xfe\":1,\"channel\":\"a\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not valid UTF-8"},
    {"lone high surrogate escape", EV_HEAD "\"channel\":\"a\\ud800\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not JSON: invalid Unicode escape"},
    {"lone low surrogate escape", EV_HEAD "\"channel\":\"\\udc00\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not JSON: invalid Unicode escape"},
    {"high surrogate then letter", EV_HEAD "\"channel\":\"\\ud800\\u0041\"," EV_TAIL, 0, TR_E_UTF8,
     "payload is not JSON: invalid Unicode escape"},
    {"integer overflow",
     EV_HEAD "\"channel\":\"a\",\"ts\":99999999999999999999,"
             "\"author\":{\"id\":\"a\"}}",
     0, TR_E_INVAL, "payload is not JSON: number out of range"},
    {"real overflow", EV_HEAD "\"channel\":\"a\",\"x\":1e400," EV_TAIL, 0, TR_E_INVAL,
     "payload is not JSON: number out of range"},
    {"single quotes", "{'v':1}", 0, TR_E_INVAL, "payload is not JSON: syntax error"},
    {"comment", "{\"v\":1 /* c */}", 0, TR_E_INVAL, "payload is not JSON: syntax error"},
};

static void test_decode_raw_invalid(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(raw_cases); i++) {
		const struct raw_case *c = &raw_cases[i];
		size_t len = c->len ? c->len : strlen(c->data);
		struct tr_event ev;
		char err[TR_ERR_LEN] = "";
		int rc = tr_event_decode(c->data, len, false, &ev, err);
		if (rc != c->rc || strncmp(err, c->err_prefix, strlen(c->err_prefix)) != 0)
			fail_msg("%s: got %s \"%s\", want %s \"%s\"", c->name, tr_strerror(rc), err,
			         tr_strerror(c->rc), c->err_prefix);
		assert_null(ev.json);
	}
	/* The valid core of these cases does decode. */
	struct tr_event ev;
	char err[TR_ERR_LEN];
	assert_int_equal(decode_str(EV_OK, false, &ev, err), TR_OK);
	tr_event_cleanup(&ev);
}

static void test_decode_deep_nesting(void **state)
{
	(void)state;
	size_t depth = 5000;
	char *p = tr_xmalloc(2 * depth + 64);
	size_t n = 0;
	memcpy(p, "{\"x\":", 5);
	n = 5;
	for (size_t i = 0; i < depth; i++)
		p[n++] = '[';
	for (size_t i = 0; i < depth; i++)
		p[n++] = ']';
	p[n++] = '}';
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_event_decode(p, n, false, &ev, err), TR_E_INVAL);
	assert_string_equal(err, "payload is not JSON: nested too deeply at byte 2053");
	free(p);
}

/* The reason names the field and never quotes the payload. */
static void test_err_has_no_content(void **state)
{
	(void)state;
	static const struct op cases[][1] = {
	    {{"type", "\"SECRET-TYPE\""}},   {{"connector", "\"SECRET CONN\""}},
	    {{"channel", "\"SECRET\\n\""}},  {{"text", "@70000S"}},
	    {{"network", "\"SECRET.NET\""}}, {{"author.id", "\"\""}},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *s = mutated(cases[i], 1);
		struct tr_event ev;
		char err[TR_ERR_LEN] = "";
		assert_int_not_equal(decode_str(s, false, &ev, err), TR_OK);
		assert_non_null(strstr(err, cases[i][0].path));
		assert_null(strstr(err, "SECRET"));
		assert_null(strstr(err, "SSSS"));
		free(s);
	}
	static const char dup[] = "{\"SECRET\":1,\"SECRET\":2}";
	static const char garbage[] = "{\"v\":1} SECRET";
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(decode_str(dup, false, &ev, err), TR_E_INVAL);
	assert_null(strstr(err, "SECRET"));
	assert_int_equal(decode_str(garbage, false, &ev, err), TR_E_INVAL);
	assert_null(strstr(err, "SECRET"));
}

static void test_decode_bad_args(void **state)
{
	(void)state;
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_event_decode(NULL, 5, false, &ev, err), TR_E_INVAL);
	assert_int_equal(tr_event_decode(NULL, 0, false, &ev, err), TR_E_INVAL);
	assert_int_equal(tr_event_decode("{}", 2, false, NULL, err), TR_E_INVAL);
	/* len bounds the payload: the NUL-less prefix of a longer buffer decodes. */
	char buf[sizeof(EV_OK) + 8];
	memcpy(buf, EV_OK, sizeof(EV_OK) - 1);
	memcpy(buf + sizeof(EV_OK) - 1, "garbage!", 8);
	assert_int_equal(tr_event_decode(buf, sizeof(EV_OK) - 1, false, &ev, err), TR_OK);
	tr_event_cleanup(&ev);
	tr_event_cleanup(NULL);
	tr_event_cleanup(&ev); /* twice is fine: cleanup zeroes */
}

/* ---- encoding ---- */

static void test_encode_from_c(void **state)
{
	(void)state;
	struct tr_event ev = {
	    .id = "irc:join:1",
	    .type = TR_EV_JOIN,
	    .connector = "irc-libera",
	    .network = "irc",
	    .channel = "#cotech",
	    .ts = 5,
	    .author = {.id = "bob"},
	};
	char err[TR_ERR_LEN] = "";
	char *out = NULL;
	assert_int_equal(tr_event_encode(&ev, &out, err), TR_OK);
	assert_string_equal(out, "{\"v\":1,\"id\":\"irc:join:1\",\"type\":\"join\","
	                         "\"connector\":\"irc-libera\",\"network\":\"irc\","
	                         "\"channel\":\"#cotech\",\"ts\":5,\"author\":{\"id\":\"bob\"}}");
	free(out);

	struct tr_attachment att[2] = {
	    {.url = "https://x/a.png", .name = "a.png", .mime = "image/png", .size = 10},
	    {.url = "https://x/b", .size = -1}};
	struct tr_event full = {
	    .id = "s:reaction:1",
	    .type = TR_EV_REACTION,
	    .connector = "slack-cotech",
	    .network = "slack",
	    .channel = "C1",
	    .ts = 1732500000123,
	    .author = {.id = "U1", .name = "al", .display = "Al", .avatar = "https://x/al"},
	    .text = "t\n\"q\"",
	    .attachments = att,
	    .n_attachments = 2,
	    .reply_to = "r",
	    .thread = "th",
	    .target = "m0",
	    .reaction = "\xf0\x9f\x91\x8d",
	    .removed = true,
	    .room = "cotech",
	    .has_dest = true,
	    .dest = {.connector = "matrix-main", .channel = "!a:b", .target = "$t"},
	};
	assert_int_equal(tr_event_encode(&full, &out, err), TR_OK);
	assert_string_equal(
	    out,
	    "{\"v\":1,\"id\":\"s:reaction:1\",\"type\":\"reaction\",\"connector\":\"slack-cotech\","
	    "\"network\":\"slack\",\"channel\":\"C1\",\"ts\":1732500000123,"
	    "\"author\":{\"id\":\"U1\",\"name\":\"al\",\"display\":\"Al\",\"avatar\":\"https://x/"
	    "al\"},"
	    "\"text\":\"t\\n\\\"q\\\"\",\"attachments\":[{\"url\":\"https://x/a.png\","
	    "\"name\":\"a.png\",\"mime\":\"image/png\",\"size\":10},{\"url\":\"https://x/b\"}],"
	    "\"reply_to\":\"r\",\"thread\":\"th\",\"target\":\"m0\","
	    "\"reaction\":\"\xf0\x9f\x91\x8d\",\"removed\":true,\"room\":\"cotech\","
	    "\"dest\":{\"connector\":\"matrix-main\",\"channel\":\"!a:b\",\"target\":\"$t\"}}");
	struct tr_event back;
	assert_int_equal(decode_str(out, true, &back, err), TR_OK);
	full.json = NULL;
	assert_event_equal(&full, &back);
	tr_event_cleanup(&back);
	free(out);
}

/* What the router does: decode an in event, add room and dest, encode. Unknown fields survive
 * at every level, known fields follow the struct, cleared fields disappear. */
static void test_encode_passes_unknown_fields(void **state)
{
	(void)state;
	static const struct op ops[] = {
	    {"x_future", "{\"a\":[1,2.5,null,true],\"b\":\"\\u00e9\"}"},
	    {"author.pronouns", "\"they\""},
	    {"attachments.0.width", "640"},
	};
	char *s = mutated(ops, TR_ARRAY_LEN(ops));
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(decode_str(s, false, &ev, err), TR_OK);
	free(s);
	assert_false(ev.has_dest);

	free(ev.text);
	ev.text = tr_xstrdup("changed");
	free(ev.reply_to);
	ev.reply_to = NULL; /* the router found no mapping */
	free(ev.author.display);
	ev.author.display = NULL;
	ev.room = tr_xstrdup("cotech");
	ev.has_dest = true;
	ev.dest.connector = tr_xstrdup("irc-libera");
	ev.dest.channel = tr_xstrdup("#cotech");
	char *out = NULL;
	assert_int_equal(tr_event_encode(&ev, &out, err), TR_OK);

	json_error_t jerr;
	json_t *o = json_loads(out, JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(o);
	json_t *fut = json_object_get(o, "x_future");
	assert_true(json_is_object(fut));
	assert_int_equal(json_array_size(json_object_get(fut, "a")), 4);
	assert_string_equal(json_string_value(json_object_get(fut, "b")), "\xc3\xa9");
	json_t *author = json_object_get(o, "author");
	assert_string_equal(json_string_value(json_object_get(author, "pronouns")), "they");
	assert_string_equal(json_string_value(json_object_get(author, "name")), "alice");
	assert_null(json_object_get(author, "display"));
	json_t *att = json_array_get(json_object_get(o, "attachments"), 0);
	assert_int_equal(json_integer_value(json_object_get(att, "width")), 640);
	assert_int_equal(json_integer_value(json_object_get(att, "size")), 52311);
	assert_string_equal(json_string_value(json_object_get(o, "text")), "changed");
	assert_null(json_object_get(o, "reply_to"));
	assert_string_equal(json_string_value(json_object_get(o, "room")), "cotech");
	json_t *dest = json_object_get(o, "dest");
	assert_string_equal(json_string_value(json_object_get(dest, "connector")), "irc-libera");
	assert_string_equal(json_string_value(json_object_get(dest, "channel")), "#cotech");
	/* The base's own dest (ignored for an in event) does not leak into the new one. */
	assert_null(json_object_get(dest, "reply_to"));
	assert_int_equal(json_object_size(dest), 2);
	/* Original key order is kept: v first, x_future after dest. */
	const char *first = NULL;
	void *iter = json_object_iter(o);
	first = json_object_iter_key(iter);
	assert_string_equal(first, "v");
	assert_null(strchr(out, ' '));
	json_decref(o);

	/* The out event decodes with want_dest, and the original event was not changed. */
	struct tr_event outev;
	assert_int_equal(decode_str(out, true, &outev, err), TR_OK);
	assert_event_equal(&ev, &outev);
	assert_string_equal(json_string_value(json_object_get(ev.json, "text")),
	                    "Hello **world** \xc3\xa9\n");
	tr_event_cleanup(&outev);
	free(out);

	/* Dropping dest again removes room and dest from the output. */
	ev.has_dest = false;
	assert_int_equal(tr_event_encode(&ev, &out, err), TR_OK);
	o = json_loads(out, 0, &jerr);
	assert_null(json_object_get(o, "room"));
	assert_null(json_object_get(o, "dest"));
	assert_non_null(json_object_get(o, "x_future"));
	json_decref(o);
	free(out);

	/* Fewer attachments than decoded: the list is rebuilt from the struct. */
	ev.n_attachments = 0;
	assert_int_equal(tr_event_encode(&ev, &out, err), TR_OK);
	o = json_loads(out, 0, &jerr);
	assert_null(json_object_get(o, "attachments"));
	json_decref(o);
	free(out);
	ev.n_attachments = 1;
	tr_event_cleanup(&ev);
}

static void test_encode_invalid(void **state)
{
	(void)state;
	struct tr_event good = {
	    .id = "i",
	    .type = TR_EV_MESSAGE,
	    .connector = "c",
	    .network = "n",
	    .channel = "ch",
	    .msgid = "m",
	    .author = {.id = "a"},
	};
	char err[TR_ERR_LEN] = "";
	char *out = (char *)"untouched";
	assert_int_equal(tr_event_encode(&good, &out, err), TR_OK);
	free(out);

	struct tr_attachment bad_att = {.url = "u", .size = -2};
	char big_text[TR_EVENT_MAX_TEXT + 2];
	memset(big_text, 'x', sizeof(big_text) - 1);
	big_text[sizeof(big_text) - 1] = '\0';
	static const char *const expect[] = {
	    "missing field id",
	    "field type has an unknown value",
	    "field connector is not a valid name",
	    "missing field network",
	    "field channel has a control character",
	    "missing field msgid",
	    "field ts must not be negative",
	    "missing field author.id",
	    "field text is not valid UTF-8",
	    "field text over 65536 bytes",
	    "field attachments over 32 entries",
	    "field attachments missing for n_attachments 1",
	    "field attachments[0].size must not be negative",
	    "missing field reaction",
	    "missing field room",
	    "missing field dest.channel",
	    "field author.name is not valid UTF-8",
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(expect); i++) {
		struct tr_event ev = good;
		switch (i) {
		case 0:
			ev.id = NULL;
			break;
		case 1:
			ev.type = TR_EV__COUNT;
			break;
		case 2:
			ev.connector = "C";
			break;
		case 3:
			ev.network = NULL;
			break;
		case 4:
			ev.channel = "a\tb";
			break;
		case 5:
			ev.msgid = NULL;
			break;
		case 6:
			ev.ts = -5;
			break;
		case 7:
			ev.author.id = NULL;
			break;
		case 8:
			ev.text = "\xc3(";
			break;
		case 9:
			ev.text = big_text;
			break;
		case 10:
			ev.attachments = &bad_att;
			ev.n_attachments = 33;
			break;
		case 11:
			ev.n_attachments = 1;
			break;
		case 12:
			ev.attachments = &bad_att;
			ev.n_attachments = 1;
			break;
		case 13:
			ev.type = TR_EV_REACTION;
			ev.target = "t";
			break;
		case 14:
			ev.has_dest = true;
			ev.dest.connector = "d";
			ev.dest.channel = "x";
			break;
		case 15:
			ev.has_dest = true;
			ev.room = "r";
			ev.dest.connector = "d";
			break;
		case 16:
			ev.author.name = "\xed\xa0\x80";
			break;
		}
		out = (char *)"untouched";
		int rc = tr_event_encode(&ev, &out, err);
		if (rc != TR_E_INVAL || strcmp(err, expect[i]) != 0)
			fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, tr_strerror(rc), err,
			         expect[i]);
		assert_null(out);
		/* validate reports the precise code. */
		rc = tr_event_validate(&ev, false, err);
		assert_int_not_equal(rc, TR_OK);
		if (i == 8 || i == 16)
			assert_int_equal(rc, TR_E_UTF8);
		if (i == 9 || i == 10)
			assert_int_equal(rc, TR_E_TOOBIG);
	}
	assert_int_equal(tr_event_encode(NULL, &out, err), TR_E_INVAL);
	assert_int_equal(tr_event_encode(&good, NULL, err), TR_E_INVAL);
	assert_int_equal(tr_event_validate(NULL, false, err), TR_E_INVAL);
	/* want_dest asks for room and dest even when has_dest is false. */
	assert_int_equal(tr_event_validate(&good, true, err), TR_E_INVAL);
	assert_string_equal(err, "missing field room");
	struct tr_event with_room = good;
	with_room.room = "r";
	assert_int_equal(tr_event_validate(&with_room, true, err), TR_E_INVAL);
	assert_string_equal(err, "missing field dest");
}

/* A valid struct whose JSON is over the payload limit: 64 KiB of control characters become
 * 384 KiB of \u00XX escapes. */
static void test_encode_too_big(void **state)
{
	(void)state;
	char *text = tr_xmalloc(TR_EVENT_MAX_TEXT + 1);
	memset(text, 0x01, TR_EVENT_MAX_TEXT);
	text[TR_EVENT_MAX_TEXT] = '\0';
	struct tr_event ev = {
	    .id = "i",
	    .type = TR_EV_TOPIC,
	    .connector = "c",
	    .network = "n",
	    .channel = "ch",
	    .author = {.id = "a"},
	    .text = text,
	};
	char err[TR_ERR_LEN] = "";
	char *out = NULL;
	assert_int_equal(tr_event_validate(&ev, false, err), TR_OK);
	assert_int_equal(tr_event_encode(&ev, &out, err), TR_E_TOOBIG);
	assert_string_equal(err, "payload over 262144 bytes");
	assert_null(out);
	free(text);
}

static void test_round_trip_base(void **state)
{
	(void)state;
	struct tr_event ev;
	char err[TR_ERR_LEN];
	for (int want = 0; want < 2; want++) {
		assert_int_equal(decode_str(base_json, want, &ev, err), TR_OK);
		assert_round_trip(&ev, want);
		/* Re-encoding a decoded, unchanged event is a fixed point. */
		char *a = NULL, *b = NULL;
		struct tr_event again;
		assert_int_equal(tr_event_encode(&ev, &a, err), TR_OK);
		assert_int_equal(decode_str(a, want, &again, err), TR_OK);
		assert_int_equal(tr_event_encode(&again, &b, err), TR_OK);
		assert_string_equal(a, b);
		free(a);
		free(b);
		tr_event_cleanup(&again);
		tr_event_cleanup(&ev);
	}
}

/* ---- fixtures ---- */

struct fixture_case {
	const char *file;
	int rc;
	const char *err;
};

static const struct fixture_case fixture_cases[] = {
    {"valid/message.json", TR_OK, ""},
    {"valid/edit.json", TR_OK, ""},
    {"valid/reaction-removed.json", TR_OK, ""},
    {"valid/join.json", TR_OK, ""},
    {"valid/unknown-fields.json", TR_OK, ""},
    {"valid/out-message.json", TR_OK, ""},
    {"invalid/missing-author-id.json", TR_E_INVAL, "missing field author.id"},
    {"invalid/bad-connector.json", TR_E_INVAL, "field connector is not a valid name"},
    {"invalid/ts-string.json", TR_E_INVAL, "field ts must be an integer"},
    {"invalid/reaction-no-target.json", TR_E_INVAL, "missing field target"},
    {"invalid/array.json", TR_E_INVAL, "payload must be a JSON object"},
    {"invalid/duplicate-key.json", TR_E_INVAL, "payload is not JSON: duplicate key at byte 66"},
    {"invalid/invalid-utf8.json", TR_E_UTF8, "payload is not valid UTF-8"},
    {"invalid/lone-surrogate.json", TR_E_UTF8,
     "payload is not JSON: invalid Unicode escape at byte 106"},
    {"invalid/out-no-dest.json", TR_E_INVAL, "missing field dest"},
};

static bool is_out_fixture(const char *file)
{
	const char *base = strrchr(file, '/');
	return strncmp(base ? base + 1 : file, "out-", 4) == 0;
}

static int decode_fixture(const char *rel, struct tr_event *ev, char *err)
{
	char path[512];
	size_t len = 0;
	snprintf(path, sizeof(path), FIXTURES "/%s", rel);
	char *data = read_file(path, &len);
	int rc = tr_event_decode(data, len, is_out_fixture(rel), ev, err);
	free(data);
	return rc;
}

static void test_fixtures_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(fixture_cases); i++) {
		const struct fixture_case *c = &fixture_cases[i];
		struct tr_event ev;
		char err[TR_ERR_LEN] = "";
		int rc = decode_fixture(c->file, &ev, err);
		if (rc != c->rc || strcmp(err, c->err) != 0)
			fail_msg("%s: got %s \"%s\", want %s \"%s\"", c->file, tr_strerror(rc), err,
			         tr_strerror(c->rc), c->err);
		if (rc == TR_OK) {
			assert_round_trip(&ev, is_out_fixture(c->file));
			tr_event_cleanup(&ev);
		}
	}
	struct tr_event ev;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(decode_fixture("valid/reaction-removed.json", &ev, err), TR_OK);
	assert_int_equal(ev.type, TR_EV_REACTION);
	assert_true(ev.removed);
	assert_string_equal(ev.reaction, "\xf0\x9f\x91\x8d");
	tr_event_cleanup(&ev);
}

/* Every file in valid/ decodes and every file in invalid/ does not, table or not. */
static void test_fixtures_dirs(void **state)
{
	(void)state;
	static const char *const dirs[] = {"valid", "invalid"};
	for (size_t d = 0; d < TR_ARRAY_LEN(dirs); d++) {
		char dpath[256];
		snprintf(dpath, sizeof(dpath), FIXTURES "/%s", dirs[d]);
		DIR *dir = opendir(dpath);
		if (!dir)
			fail_msg("cannot open %s (tests run from the repository root)", dpath);
		size_t seen = 0;
		struct dirent *de;
		while ((de = readdir(dir)) != NULL) {
			size_t n = strlen(de->d_name);
			if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
				continue;
			char rel[300];
			snprintf(rel, sizeof(rel), "%s/%s", dirs[d], de->d_name);
			struct tr_event ev;
			char err[TR_ERR_LEN] = "";
			int rc = decode_fixture(rel, &ev, err);
			if ((rc == TR_OK) != (d == 0))
				fail_msg("%s: %s %s", rel, tr_strerror(rc), err);
			tr_event_cleanup(&ev);
			seen++;
		}
		closedir(dir);
		assert_true(seen >= 5);
	}
}

/* ---- ack ---- */

static void test_ack(void **state)
{
	(void)state;
	struct tr_ack ack;
	char err[TR_ERR_LEN] = "";
	static const char ok_json[] =
	    "{\"v\":1,\"id\":\"slack-cotech:message:1\",\"dest\":{\"connector\":\"matrix-main\","
	    "\"channel\":\"!abc123:example.org\"},\"ok\":true,\"msgid\":\"$new\"}";
	assert_int_equal(tr_ack_decode(ok_json, strlen(ok_json), &ack, err), TR_OK);
	assert_string_equal(ack.id, "slack-cotech:message:1");
	assert_string_equal(ack.dest_connector, "matrix-main");
	assert_string_equal(ack.dest_channel, "!abc123:example.org");
	assert_true(ack.ok);
	assert_string_equal(ack.msgid, "$new");
	assert_null(ack.error);
	assert_null(ack.detail);
	char *out = NULL;
	assert_int_equal(tr_ack_encode(&ack, &out), TR_OK);
	assert_string_equal(out, ok_json);
	free(out);
	tr_ack_cleanup(&ack);
	assert_null(ack.id);

	static const char fail_json[] =
	    "{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\",\"x\":1},"
	    "\"ok\":false,\"error\":\"forbidden\",\"detail\":\"bot not in channel\",\"y\":[]}";
	assert_int_equal(tr_ack_decode(fail_json, strlen(fail_json), &ack, err), TR_OK);
	assert_false(ack.ok);
	assert_null(ack.msgid);
	assert_string_equal(ack.error, "forbidden");
	assert_string_equal(ack.detail, "bot not in channel");
	assert_int_equal(tr_ack_encode(&ack, &out), TR_OK);
	assert_string_equal(out, "{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":"
	                         "\"c\"},\"ok\":false,\"error\":\"forbidden\",\"detail\":\"bot not "
	                         "in channel\"}");
	struct tr_ack back;
	assert_int_equal(tr_ack_decode(out, strlen(out), &back, err), TR_OK);
	assert_string_equal(back.error, ack.error);
	assert_string_equal(back.detail, ack.detail);
	assert_false(back.ok);
	tr_ack_cleanup(&back);
	free(out);
	tr_ack_cleanup(&ack);
}

static void test_ack_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		int rc;
		const char *err;
	} cases[] = {
	    {"{\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true}",
	     TR_E_INVAL, "missing field v"},
	    {"{\"v\":2,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true}",
	     TR_E_INVAL, "field v must be 1"},
	    {"{\"v\":1,\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true}", TR_E_INVAL,
	     "missing field id"},
	    {"{\"v\":1,\"id\":\"\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true}",
	     TR_E_INVAL, "field id is empty"},
	    {"{\"v\":1,\"id\":\"e\",\"ok\":true}", TR_E_INVAL, "missing field dest"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":[],\"ok\":true}", TR_E_INVAL,
	     "field dest must be an object"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"channel\":\"c\"},\"ok\":true}", TR_E_INVAL,
	     "missing field dest.connector"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"M\",\"channel\":\"c\"},\"ok\":true}",
	     TR_E_INVAL, "field dest.connector is not a valid name"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\"},\"ok\":true}", TR_E_INVAL,
	     "missing field dest.channel"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"}}", TR_E_INVAL,
	     "missing field ok"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":1}",
	     TR_E_INVAL, "field ok must be true or false"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":false}",
	     TR_E_INVAL, "missing field error"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":false,"
	     "\"error\":\"\"}",
	     TR_E_INVAL, "field error is empty"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":false,"
	     "\"error\":5}",
	     TR_E_INVAL, "field error must be a string"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true,"
	     "\"msgid\":\"\"}",
	     TR_E_INVAL, "field msgid is empty"},
	    {"{\"v\":1,\"id\":\"e\",\"dest\":{\"connector\":\"m\",\"channel\":\"c\"},\"ok\":true,"
	     "\"detail\":7}",
	     TR_E_INVAL, "field detail must be a string"},
	    {"[]", TR_E_INVAL, "payload must be a JSON object"},
	    {"{\"v\":1,\"v\":1}", TR_E_INVAL, "payload is not JSON: duplicate key at byte 10"},
	    {"{\"v\":\"\xff\"}", TR_E_UTF8, "payload is not valid UTF-8"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		struct tr_ack ack;
		char err[TR_ERR_LEN] = "";
		int rc = tr_ack_decode(cases[i].json, strlen(cases[i].json), &ack, err);
		if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, tr_strerror(rc), err,
			         cases[i].err);
		assert_null(ack.id);
	}
	/* detail is bounded at 1024 bytes. */
	char detail[1100];
	memset(detail, 'd', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	json_t *o =
	    json_pack("{s:i,s:s,s:{s:s,s:s},s:b,s:s,s:s}", "v", 1, "id", "e", "dest", "connector",
	              "m", "channel", "c", "ok", 0, "error", "x", "detail", detail);
	char *s = json_dumps(o, JSON_COMPACT);
	struct tr_ack ack;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_ack_decode(s, strlen(s), &ack, err), TR_E_TOOBIG);
	assert_string_equal(err, "field detail over 1024 bytes");
	free(s);
	json_decref(o);

	/* Encoding refuses what decoding would refuse. */
	struct tr_ack bad[] = {
	    {.dest_connector = "m", .dest_channel = "c", .ok = true},
	    {.id = "e", .dest_connector = "m", .dest_channel = "c", .ok = false},
	    {.id = "e", .dest_connector = "M", .dest_channel = "c", .ok = true},
	    {.id = "e", .dest_connector = "m", .ok = true},
	    {.id = "e", .dest_connector = "m", .dest_channel = "c", .ok = true, .detail = detail},
	    {.id = "e\n", .dest_connector = "m", .dest_channel = "c", .ok = true},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		char *out = (char *)"untouched";
		assert_int_equal(tr_ack_encode(&bad[i], &out), TR_E_INVAL);
		assert_null(out);
	}
	char *out = NULL;
	assert_int_equal(tr_ack_encode(NULL, &out), TR_E_INVAL);
	assert_int_equal(tr_ack_encode(&bad[0], NULL), TR_E_INVAL);
	tr_ack_cleanup(NULL);
}

/* ---- status ---- */

static void test_status(void **state)
{
	(void)state;
	static const char *const states[] = {"starting", "online", "degraded", "offline"};
	for (size_t i = 0; i < TR_ARRAY_LEN(states); i++) {
		char json[256];
		snprintf(json, sizeof(json),
		         "{\"v\":1,\"connector\":\"slack-cotech\",\"network\":\"slack\","
		         "\"state\":\"%s\",\"since\":1732500000123,\"detail\":\"connected as "
		         "@trestle\"}",
		         states[i]);
		struct tr_status st;
		char err[TR_ERR_LEN] = "";
		assert_int_equal(tr_status_decode(json, strlen(json), &st, err), TR_OK);
		assert_string_equal(st.connector, "slack-cotech");
		assert_string_equal(st.network, "slack");
		assert_int_equal(st.state, i);
		assert_int_equal(st.since, INT64_C(1732500000123));
		assert_string_equal(st.detail, "connected as @trestle");
		char *out = NULL;
		assert_int_equal(tr_status_encode(&st, &out), TR_OK);
		assert_string_equal(out, json);
		free(out);
		tr_status_cleanup(&st);
		assert_null(st.connector);
	}
	struct tr_status st = {.connector = "irc", .network = "irc", .state = TR_STATE_OFFLINE};
	char *out = NULL;
	assert_int_equal(tr_status_encode(&st, &out), TR_OK);
	assert_string_equal(out, "{\"v\":1,\"connector\":\"irc\",\"network\":\"irc\",\"state\":"
	                         "\"offline\",\"since\":0}");
	struct tr_status back;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_status_decode(out, strlen(out), &back, err), TR_OK);
	assert_null(back.detail);
	assert_int_equal(back.state, TR_STATE_OFFLINE);
	tr_status_cleanup(&back);
	free(out);
}

static void test_status_invalid(void **state)
{
	(void)state;
#define ST(rest) "{\"v\":1,\"connector\":\"c\",\"network\":\"n\"," rest "}"
	static const struct {
		const char *json;
		int rc;
		const char *err;
	} cases[] = {
	    {"{\"connector\":\"c\",\"network\":\"n\",\"state\":\"online\",\"since\":1}", TR_E_INVAL,
	     "missing field v"},
	    {"{\"v\":1,\"network\":\"n\",\"state\":\"online\",\"since\":1}", TR_E_INVAL,
	     "missing field connector"},
	    {"{\"v\":1,\"connector\":\"C\",\"network\":\"n\",\"state\":\"online\",\"since\":1}",
	     TR_E_INVAL, "field connector is not a valid name"},
	    {"{\"v\":1,\"connector\":\"c\",\"state\":\"online\",\"since\":1}", TR_E_INVAL,
	     "missing field network"},
	    {ST("\"since\":1"), TR_E_INVAL, "missing field state"},
	    {ST("\"state\":\"up\",\"since\":1"), TR_E_INVAL, "field state has an unknown value"},
	    {ST("\"state\":1,\"since\":1"), TR_E_INVAL, "field state must be a string"},
	    {ST("\"state\":\"online\""), TR_E_INVAL, "missing field since"},
	    {ST("\"state\":\"online\",\"since\":\"1\""), TR_E_INVAL,
	     "field since must be an integer"},
	    {ST("\"state\":\"online\",\"since\":-1"), TR_E_INVAL,
	     "field since must not be negative"},
	    {ST("\"state\":\"online\",\"since\":1,\"detail\":[]"), TR_E_INVAL,
	     "field detail must be a string"},
	    {"true", TR_E_INVAL, "payload must be a JSON object"},
	};
#undef ST
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		struct tr_status st;
		char err[TR_ERR_LEN] = "";
		int rc = tr_status_decode(cases[i].json, strlen(cases[i].json), &st, err);
		if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, tr_strerror(rc), err,
			         cases[i].err);
		assert_null(st.connector);
	}
	char detail[1100];
	memset(detail, 'd', sizeof(detail) - 1);
	detail[sizeof(detail) - 1] = '\0';
	struct tr_status bad[] = {
	    {.network = "n", .state = TR_STATE_ONLINE},
	    {.connector = "c", .state = TR_STATE_ONLINE},
	    {.connector = "c", .network = "n", .state = (enum tr_state)9},
	    {.connector = "c", .network = "n", .since = -1},
	    {.connector = "c", .network = "n", .detail = detail},
	    {.connector = "c", .network = "n", .detail = "\xff"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		char *out = (char *)"untouched";
		assert_int_equal(tr_status_encode(&bad[i], &out), TR_E_INVAL);
		assert_null(out);
	}
	char *out = NULL;
	assert_int_equal(tr_status_encode(NULL, &out), TR_E_INVAL);
	tr_status_cleanup(NULL);
}

/* ---- channels ---- */

static void test_channels(void **state)
{
	(void)state;
	static const char json[] = "{\"v\":1,\"channels\":[\"#cotech\",\"#random\",\"!a:b\"]}";
	char **ch = NULL;
	size_t n = 99;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_channels_decode(json, strlen(json), &ch, &n, err), TR_OK);
	assert_int_equal(n, 3);
	assert_string_equal(ch[0], "#cotech");
	assert_string_equal(ch[1], "#random");
	assert_string_equal(ch[2], "!a:b");
	assert_null(ch[3]);
	char *out = NULL;
	assert_int_equal(tr_channels_encode((const char *const *)ch, n, &out), TR_OK);
	assert_string_equal(out, json);
	free(out);
	tr_channels_free(ch);

	static const char empty[] = "{\"v\":1,\"channels\":[],\"x\":1}";
	assert_int_equal(tr_channels_decode(empty, strlen(empty), &ch, &n, err), TR_OK);
	assert_int_equal(n, 0);
	assert_non_null(ch);
	assert_null(ch[0]);
	tr_channels_free(ch);
	assert_int_equal(tr_channels_encode(NULL, 0, &out), TR_OK);
	assert_string_equal(out, "{\"v\":1,\"channels\":[]}");
	free(out);
	tr_channels_free(NULL);

	/* The count limit is inclusive. */
	const char **many = tr_xcalloc(TR_EVENT_MAX_CHANNELS + 1, sizeof(*many));
	for (size_t i = 0; i <= TR_EVENT_MAX_CHANNELS; i++)
		many[i] = "c";
	assert_int_equal(tr_channels_encode(many, TR_EVENT_MAX_CHANNELS, &out), TR_OK);
	assert_int_equal(tr_channels_decode(out, strlen(out), &ch, &n, err), TR_OK);
	assert_int_equal(n, TR_EVENT_MAX_CHANNELS);
	tr_channels_free(ch);
	free(out);
	out = (char *)"untouched";
	assert_int_equal(tr_channels_encode(many, TR_EVENT_MAX_CHANNELS + 1, &out), TR_E_INVAL);
	assert_null(out);
	free(many);

	/* Valid entries whose JSON is over the payload limit. */
	char big[TR_EVENT_MAX_ID + 1];
	memset(big, 'b', TR_EVENT_MAX_ID);
	big[TR_EVENT_MAX_ID] = '\0';
	const char *bigs[300];
	for (size_t i = 0; i < TR_ARRAY_LEN(bigs); i++)
		bigs[i] = big;
	assert_int_equal(tr_channels_encode(bigs, TR_ARRAY_LEN(bigs), &out), TR_E_TOOBIG);
	assert_null(out);
}

static void test_channels_invalid(void **state)
{
	(void)state;
	static const struct {
		const char *json;
		int rc;
		const char *err;
	} cases[] = {
	    {"{\"channels\":[]}", TR_E_INVAL, "missing field v"},
	    {"{\"v\":1}", TR_E_INVAL, "missing field channels"},
	    {"{\"v\":1,\"channels\":null}", TR_E_INVAL, "missing field channels"},
	    {"{\"v\":1,\"channels\":\"#a\"}", TR_E_INVAL, "field channels must be an array"},
	    {"{\"v\":1,\"channels\":[\"#a\",5]}", TR_E_INVAL, "field channels[1] must be a string"},
	    {"{\"v\":1,\"channels\":[\"#a\",null]}", TR_E_INVAL,
	     "field channels[1] must be a string"},
	    {"{\"v\":1,\"channels\":[\"\"]}", TR_E_INVAL, "field channels[0] is empty"},
	    {"{\"v\":1,\"channels\":[\"#a\\r\\nJOIN #b\"]}", TR_E_INVAL,
	     "field channels[0] has a control character"},
	    {"{\"v\":1,\"channels\":[\"\\ud800\"]}", TR_E_UTF8,
	     "payload is not JSON: invalid Unicode escape at byte 27"},
	    {"[\"#a\"]", TR_E_INVAL, "payload must be a JSON object"},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *sentinel[1] = {NULL};
		char **ch = sentinel;
		size_t n = 99;
		char err[TR_ERR_LEN] = "";
		int rc = tr_channels_decode(cases[i].json, strlen(cases[i].json), &ch, &n, err);
		if (rc != cases[i].rc || strcmp(err, cases[i].err) != 0)
			fail_msg("case %zu: got %s \"%s\", want \"%s\"", i, tr_strerror(rc), err,
			         cases[i].err);
		assert_null(ch);
		assert_int_equal(n, 0);
	}
	/* 10001 entries. */
	json_t *arr = json_array();
	for (size_t i = 0; i <= TR_EVENT_MAX_CHANNELS; i++)
		json_array_append_new(arr, json_string("c"));
	json_t *o = json_pack("{s:i,s:o}", "v", 1, "channels", arr);
	char *s = json_dumps(o, JSON_COMPACT);
	char **ch = NULL;
	size_t n = 0;
	char err[TR_ERR_LEN] = "";
	assert_int_equal(tr_channels_decode(s, strlen(s), &ch, &n, err), TR_E_TOOBIG);
	assert_string_equal(err, "field channels over 10000 entries");
	assert_null(ch);
	free(s);
	json_decref(o);

	static const char *const bad1[] = {"#a", ""};
	static const char *const bad2[] = {"#a", NULL};
	static const char *const bad3[] = {"#a\n"};
	char *out = NULL;
	assert_int_equal(tr_channels_encode(bad1, 2, &out), TR_E_INVAL);
	assert_int_equal(tr_channels_encode(bad2, 2, &out), TR_E_INVAL);
	assert_int_equal(tr_channels_encode(bad3, 1, &out), TR_E_INVAL);
	assert_int_equal(tr_channels_encode(NULL, 1, &out), TR_E_INVAL);
	assert_int_equal(tr_channels_encode(bad1, 1, NULL), TR_E_INVAL);
	assert_int_equal(tr_channels_decode("{}", 2, NULL, &n, err), TR_E_INVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_type_names),
	    cmocka_unit_test(test_connector_name),
	    cmocka_unit_test(test_now_ms),
	    cmocka_unit_test(test_decode_full_message),
	    cmocka_unit_test(test_decode_valid_types),
	    cmocka_unit_test(test_decode_at_limits),
	    cmocka_unit_test(test_decode_payload_limit),
	    cmocka_unit_test(test_decode_invalid_fields),
	    cmocka_unit_test(test_in_event_ignores_dest),
	    cmocka_unit_test(test_decode_too_many_attachments),
	    cmocka_unit_test(test_decode_raw_invalid),
	    cmocka_unit_test(test_decode_deep_nesting),
	    cmocka_unit_test(test_err_has_no_content),
	    cmocka_unit_test(test_decode_bad_args),
	    cmocka_unit_test(test_encode_from_c),
	    cmocka_unit_test(test_encode_passes_unknown_fields),
	    cmocka_unit_test(test_encode_invalid),
	    cmocka_unit_test(test_encode_too_big),
	    cmocka_unit_test(test_round_trip_base),
	    cmocka_unit_test(test_fixtures_table),
	    cmocka_unit_test(test_fixtures_dirs),
	    cmocka_unit_test(test_ack),
	    cmocka_unit_test(test_ack_invalid),
	    cmocka_unit_test(test_status),
	    cmocka_unit_test(test_status_invalid),
	    cmocka_unit_test(test_channels),
	    cmocka_unit_test(test_channels_invalid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
