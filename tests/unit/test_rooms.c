/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of common/rooms.c: the rooms files under tests/fixtures/rooms/ (good ones parse to
 * the expected JSON, bad ones give exactly the expected "FILE:LINE: reason" lines), in-memory
 * cases for each rule, the JSON round trip and validation, and the connector/channel queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "rooms.h"

#define FIX       "tests/fixtures/rooms/"
#define CONN_HINT " (expected [a-z0-9][a-z0-9_-]{0,62})"
#define ROOM_HINT " (1 to 64 of A-Z a-z 0-9 _ . -)"
#define MODE_HINT " (expected inout, in or out)"
#define TOKEN_MSG "channel must be one token without white space (then an optional mode)"

/* ---- helpers ---- */

static char *rooms_json(const struct tr_rooms *r)
{
	json_t *j = tr_rooms_to_json(r);
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT);
	assert_non_null(s);
	json_decref(j);
	return s;
}

/* Parses a JSON text with tr_rooms_from_json; returns its error or "" (static buffer). */
static const char *from_json_text(const char *text, struct tr_rooms *out)
{
	static char err[TR_ERR_LEN];
	json_error_t jerr;
	json_t *j = json_loads(text, JSON_ALLOW_NUL, &jerr);
	if (!j)
		fail_msg("bad test JSON %s: %s", text, jerr.text);
	int rc = tr_rooms_from_json(j, out, err);
	json_decref(j);
	if (rc == TR_OK) {
		assert_string_equal(err, "");
		return "";
	}
	assert_int_equal(rc, TR_E_INVAL);
	assert_int_equal(out->n_rooms, 0);
	assert_null(out->rooms);
	return err;
}

/* The JSON form must load back into rooms that render the same JSON. */
static void assert_round_trip(const struct tr_rooms *r)
{
	char *a = rooms_json(r);
	struct tr_rooms back;
	assert_string_equal(from_json_text(a, &back), "");
	char *b = rooms_json(&back);
	assert_string_equal(a, b);
	assert_int_equal(back.n_rooms, r->n_rooms);
	for (size_t i = 0; i < back.n_rooms; i++) {
		assert_int_equal(back.rooms[i].line, 0);
		for (size_t k = 0; k < back.rooms[i].n_eps; k++)
			assert_int_equal(back.rooms[i].eps[k].line, 0);
	}
	tr_rooms_cleanup(&back);
	free(a);
	free(b);
}

/* ---- fixture files ---- */

struct file_case {
	const char *file;
	const char *want; /* good: the JSON; bad: the exact error text */
};

static const struct file_case good_files[] = {
    {FIX "good-design.ini",
     "{\"v\":1,\"rooms\":[{\"name\":\"cotech\",\"endpoints\":["
     "{\"connector\":\"slack-cotech\",\"channel\":\"C024BE91L\",\"mode\":\"inout\"},"
     "{\"connector\":\"matrix-main\",\"channel\":\"!abc123:example.org\",\"mode\":\"inout\"},"
     "{\"connector\":\"irc-libera\",\"channel\":\"#cotech\",\"mode\":\"inout\"},"
     "{\"connector\":\"telegram-coop\",\"channel\":\"-1001234567890\",\"mode\":\"in\"}]}]}"},
    {FIX "good-full.ini",
     "{\"v\":1,\"rooms\":[{\"name\":\"cotech\",\"endpoints\":["
     "{\"connector\":\"slack-cotech\",\"channel\":\"C024BE91L\",\"mode\":\"inout\"},"
     "{\"connector\":\"matrix-main\",\"channel\":\"!abc123:example.org\",\"mode\":\"inout\"},"
     "{\"connector\":\"irc-libera\",\"channel\":\"#cotech\",\"mode\":\"out\"},"
     "{\"connector\":\"irc-libera\",\"channel\":\"#cotech-ops\",\"mode\":\"in\"}]},"
     "{\"name\":\"general.2024_x-y\",\"endpoints\":["
     "{\"connector\":\"slack-cotech\",\"channel\":\"C024BE91L\",\"mode\":\"inout\"},"
     "{\"connector\":\"discord-fed\",\"channel\":\"1234567890\",\"mode\":\"inout\"},"
     "{\"connector\":\"webchat\",\"channel\":\"lobby\",\"mode\":\"inout\"},"
     "{\"connector\":\"xmpp-main\",\"channel\":\"general@conference.example.org\","
     "\"mode\":\"inout\"},"
     "{\"connector\":\"matrix-main\",\"channel\":\"#g\xc3\xa9n\xc3\xa9ral:example.org\","
     "\"mode\":\"inout\"}]}]}"},
    {FIX "good-crlf.ini", "{\"v\":1,\"rooms\":[{\"name\":\"crlf\",\"endpoints\":["
                          "{\"connector\":\"slack-a\",\"channel\":\"C1\",\"mode\":\"inout\"},"
                          "{\"connector\":\"irc-b\",\"channel\":\"#crlf\",\"mode\":\"in\"}]}]}"},
    {FIX "good-bom-noeol.ini",
     "{\"v\":1,\"rooms\":[{\"name\":\"bom\",\"endpoints\":["
     "{\"connector\":\"slack-a\",\"channel\":\"C1\",\"mode\":\"inout\"},"
     "{\"connector\":\"irc-b\",\"channel\":\"#bom\",\"mode\":\"inout\"}]}]}"},
    {FIX "good-empty.ini", "{\"v\":1,\"rooms\":[]}"},
    {FIX "good-comments.ini", "{\"v\":1,\"rooms\":[]}"},
};

static const struct file_case bad_files[] = {
    {FIX "bad-outside.ini",
     FIX "bad-outside.ini:1: text outside a section (start one with [room NAME])\n"},
    {FIX "bad-kind.ini",
     FIX "bad-kind.ini:1: unknown section kind 'channel' (expected [room NAME])\n"},
    {FIX "bad-room-name.ini",
     FIX "bad-room-name.ini:1: bad room name 'co tech'" ROOM_HINT "\n" FIX
         "bad-room-name.ini:3: missing room name (expected [room NAME])\n" FIX
         "bad-room-name.ini:5: bad room name 'caf\xc3\xa9'" ROOM_HINT "\n" FIX
         "bad-room-name.ini:7: bad room name "
         "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'" ROOM_HINT "\n" FIX
         "bad-room-name.ini:9: bad section header '[room ok' (expected [room NAME])\n"},
    {FIX "bad-duplicate-room.ini",
     FIX "bad-duplicate-room.ini:4: duplicate room 'cotech' (first declared at line 1)\n"},
    {FIX "bad-no-equals.ini",
     FIX "bad-no-equals.ini:2: expected 'connector = channel [mode]' (no '=')\n"},
    {FIX "bad-connector.ini",
     FIX "bad-connector.ini:2: bad connector name 'IRC-Libera'" CONN_HINT "\n" FIX
         "bad-connector.ini:3: bad connector name '-irc'" CONN_HINT "\n" FIX
         "bad-connector.ini:4: missing connector name before '='\n" FIX
         "bad-connector.ini:5: bad connector name 'slack cotech'" CONN_HINT "\n" FIX
         "bad-connector.ini:6: bad connector name "
         "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'" CONN_HINT "\n"},
    {FIX "bad-empty-channel.ini",
     FIX "bad-empty-channel.ini:2: empty channel\n" FIX "bad-empty-channel.ini:3: empty channel\n"},
    {FIX "bad-channel-tokens.ini", FIX "bad-channel-tokens.ini:2: " TOKEN_MSG "\n" FIX
                                       "bad-channel-tokens.ini:3: " TOKEN_MSG "\n"},
    {FIX "bad-mode.ini", FIX "bad-mode.ini:2: unknown mode 'both'" MODE_HINT "\n" FIX
                             "bad-mode.ini:3: unknown mode 'IN'" MODE_HINT "\n"},
    {FIX "bad-dup-endpoint.ini",
     FIX "bad-dup-endpoint.ini:4: endpoint irc-libera = '#cotech' is already in this room "
         "(line 2)\n"},
    {FIX "bad-utf8.ini",
     FIX "bad-utf8.ini:2: invalid UTF-8\n" FIX "bad-utf8.ini:4: invalid UTF-8\n"},
    {FIX "bad-nul.ini", FIX "bad-nul.ini:2: NUL byte\n"},
    {FIX "bad-empty-room.ini", FIX "bad-empty-room.ini:1: room 'empty' has no endpoints\n" FIX
                                   "bad-empty-room.ini:5: room 'last' has no endpoints\n"},
    {FIX "bad-many.ini",
     FIX "bad-many.ini:2: text outside a section (start one with [room NAME])\n" FIX
         "bad-many.ini:5: endpoint irc-libera = '#cotech' is already in this room (line 4)\n" FIX
         "bad-many.ini:6: bad connector name 'Bad'" CONN_HINT "\n" FIX
         "bad-many.ini:7: duplicate room 'cotech' (first declared at line 3)\n" FIX
         "bad-many.ini:8: unknown mode 'sideways'" MODE_HINT "\n" FIX
         "bad-many.ini:9: unknown section kind 'server' (expected [room NAME])\n" FIX
         "bad-many.ini:10: room 'lonely' has no endpoints\n"},
    {FIX "does-not-exist.ini", FIX "does-not-exist.ini: No such file or directory\n"},
};

static void test_good_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(good_files); i++) {
		struct tr_rooms r;
		struct tr_buf errors;
		tr_buf_init(&errors, 64 * 1024);
		int rc = tr_rooms_load(good_files[i].file, &r, &errors);
		if (rc != TR_OK)
			fail_msg("%s: %s", good_files[i].file, tr_buf_str(&errors));
		assert_string_equal(tr_buf_str(&errors), "");
		char *j = rooms_json(&r);
		if (strcmp(j, good_files[i].want) != 0)
			fail_msg("%s:\n got %s\nwant %s", good_files[i].file, j,
			         good_files[i].want);
		assert_round_trip(&r);
		free(j);
		tr_rooms_cleanup(&r);
		tr_buf_cleanup(&errors);
	}
}

static void test_bad_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(bad_files); i++) {
		struct tr_rooms r;
		struct tr_buf errors;
		tr_buf_init(&errors, 64 * 1024);
		int rc = tr_rooms_load(bad_files[i].file, &r, &errors);
		assert_int_equal(rc, TR_E_CONFIG);
		assert_int_equal(r.n_rooms, 0);
		assert_null(r.rooms);
		if (strcmp(tr_buf_str(&errors), bad_files[i].want) != 0)
			fail_msg("%s:\n got:\n%s want:\n%s", bad_files[i].file, tr_buf_str(&errors),
			         bad_files[i].want);
		tr_rooms_cleanup(&r);
		tr_buf_cleanup(&errors);
	}
}

/* ---- in-memory cases ---- */

struct text_case {
	const char *text;
	size_t len;       /* 0: strlen(text) */
	const char *want; /* NULL: must parse; else the exact error text for file "t.ini" */
};

static const struct text_case text_cases[] = {
    {"[room a]\nx = 1\n", 0, NULL},
    {"[room a]\r\nx = 1\r\n", 0, NULL},
    {"\n\n   \n\t\n[room a]\n  ; c\n\t# c\nx=1", 0, NULL},
    {"[room a]\nx = #c=d in\n", 0, NULL},            /* '=' inside a channel */
    {"[room\ta]\nx = 1\n", 0, NULL},                 /* tab after room */
    {"[room a]\nx = 1\n[room b]\nx = 1\n", 0, NULL}, /* one endpoint in two rooms */
    {"[room a]\nx = 1 in\nx = 2 out\nx = 3 inout\n", 0, NULL},
    {"[room a]\n0 = 1\n", 0, NULL},
    {"x = 1\n", 0, "t.ini:1: text outside a section (start one with [room NAME])\n"},
    {"junk\n[room a]\nx=1\n", 0, "t.ini:1: text outside a section (start one with [room NAME])\n"},
    {"[Room a]\nx=1\n", 0, "t.ini:1: unknown section kind 'Room' (expected [room NAME])\n"},
    {"[]\n", 0, "t.ini:1: unknown section kind '' (expected [room NAME])\n"},
    {"[room a/b]\nx=1\n", 0, "t.ini:1: bad room name 'a/b'" ROOM_HINT "\n"},
    {"[room a]\nx=1\n[room a]\nx=1\n", 0,
     "t.ini:3: duplicate room 'a' (first declared at line 1)\n"},
    {"[room a]\nx\n", 0, "t.ini:2: expected 'connector = channel [mode]' (no '=')\n"},
    {"[room a]\nx_ = 1\n_x = 1\n", 0, "t.ini:3: bad connector name '_x'" CONN_HINT "\n"},
    {"[room a]\nx = \n", 0, "t.ini:2: empty channel\n"},
    {"[room a]\nx = a b c\n", 0, "t.ini:2: " TOKEN_MSG "\n"},
    {"[room a]\nx = a inout out\n", 0, "t.ini:2: " TOKEN_MSG "\n"},
    {"[room a]\nx = a Out\n", 0, "t.ini:2: unknown mode 'Out'" MODE_HINT "\n"},
    {"[room a]\nx = a\nx = a out\n", 0,
     "t.ini:3: endpoint x = 'a' is already in this room (line 2)\n"},
    {"[room a]\nx = a\x01\n", 0, "t.ini:2: channel contains a control character\n"},
    {"[room a]\nx = a\rb\n", 0, "t.ini:2: channel contains a control character\n"},
    {"[room a]\nx = \xed\xa0\x80\n", 0, "t.ini:2: invalid UTF-8\n"}, /* a surrogate */
    {"[room a]\nx = a\0b\n", 17, "t.ini:2: NUL byte\n"},
    {"[room a]\n", 0, "t.ini:1: room 'a' has no endpoints\n"},
    {"[room a]\n[room b]\nx=1\n", 0, "t.ini:1: room 'a' has no endpoints\n"},
    /* Lines of a refused section are still checked, and blamed on no other room. */
    {"[room a]\nx=1\n[room \xff]\nx=1\ny\n", 0,
     "t.ini:3: invalid UTF-8\nt.ini:5: expected 'connector = channel [mode]' (no '=')\n"},
    {"[room a]\nx=1\n[bad]\nx=1\nx=1\n", 0,
     "t.ini:3: unknown section kind 'bad' (expected [room NAME])\n"
     "t.ini:5: endpoint x = '1' is already in this room (line 4)\n"},
    /* A refused section's endpoints do not clash with a later good section. */
    {"[bad]\nx=1\n[room a]\nx=1\n", 0,
     "t.ini:1: unknown section kind 'bad' (expected [room NAME])\n"},
};

static void test_text_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(text_cases); i++) {
		const struct text_case *tc = &text_cases[i];
		size_t len = tc->len ? tc->len : strlen(tc->text);
		struct tr_rooms r;
		struct tr_buf errors;
		tr_buf_init(&errors, 64 * 1024);
		int rc = tr_rooms_parse(tc->text, len, "t.ini", &r, &errors);
		if (!tc->want) {
			if (rc != TR_OK)
				fail_msg("case %zu: %s", i, tr_buf_str(&errors));
			assert_true(r.n_rooms > 0);
			assert_round_trip(&r);
		} else {
			assert_int_equal(rc, TR_E_CONFIG);
			assert_int_equal(r.n_rooms, 0);
			if (strcmp(tr_buf_str(&errors), tc->want) != 0)
				fail_msg("case %zu:\n got:\n%s want:\n%s", i, tr_buf_str(&errors),
				         tc->want);
		}
		tr_rooms_cleanup(&r);
		tr_buf_cleanup(&errors);
	}
}

static void test_lines_and_modes(void **state)
{
	(void)state;
	static const char text[] = "; c\n[room a]\n\nx = 1 in\ny = 2 out\nz = 3\n[room b]\nx = 1\n";
	struct tr_rooms r;
	assert_int_equal(tr_rooms_parse(text, strlen(text), "t.ini", &r, NULL), TR_OK);
	assert_int_equal(r.n_rooms, 2);
	assert_string_equal(r.rooms[0].name, "a");
	assert_int_equal(r.rooms[0].line, 2);
	assert_int_equal(r.rooms[0].n_eps, 3);
	assert_int_equal(r.rooms[0].eps[0].line, 4);
	assert_int_equal(r.rooms[0].eps[0].mode, TR_MODE_IN);
	assert_int_equal(r.rooms[0].eps[1].mode, TR_MODE_OUT);
	assert_int_equal(r.rooms[0].eps[2].mode, TR_MODE_INOUT);
	assert_int_equal(r.rooms[1].line, 7);
	assert_int_equal(r.rooms[1].eps[0].line, 8);
	tr_rooms_cleanup(&r);
	assert_string_equal(tr_mode_name(TR_MODE_INOUT), "inout");
	assert_string_equal(tr_mode_name(TR_MODE_IN), "in");
	assert_string_equal(tr_mode_name(TR_MODE_OUT), "out");
	assert_null(tr_mode_name((enum tr_mode)7));
}

static void test_too_big(void **state)
{
	(void)state;
	size_t len = TR_ROOMS_MAX_FILE + 1;
	char *text = tr_xmalloc(len);
	memset(text, '\n', len);
	struct tr_rooms r;
	struct tr_buf errors;
	tr_buf_init(&errors, 1024);
	assert_int_equal(tr_rooms_parse(text, len, "big.ini", &r, &errors), TR_E_CONFIG);
	assert_string_equal(tr_buf_str(&errors), "big.ini: file is larger than 16 MiB\n");
	assert_int_equal(r.n_rooms, 0);
	/* Exactly the maximum is accepted (all blank lines: no rooms). */
	tr_buf_reset(&errors);
	assert_int_equal(tr_rooms_parse(text, len - 1, "big.ini", &r, &errors), TR_OK);
	assert_string_equal(tr_buf_str(&errors), "");
	tr_rooms_cleanup(&r);
	tr_buf_cleanup(&errors);
	free(text);
}

/* A small error buffer fills up; the parse still fails and nothing overflows. */
static void test_errors_buffer_full(void **state)
{
	(void)state;
	static const char text[] = "a\nb\nc\nd\ne\nf\n";
	struct tr_rooms r;
	struct tr_buf errors;
	tr_buf_init(&errors, 100);
	assert_int_equal(tr_rooms_parse(text, strlen(text), "t.ini", &r, &errors), TR_E_CONFIG);
	assert_true(errors.len <= 100);
	assert_non_null(strstr(tr_buf_str(&errors), "t.ini:1: "));
	tr_buf_cleanup(&errors);
	assert_int_equal(tr_rooms_parse(text, strlen(text), "t.ini", &r, NULL), TR_E_CONFIG);
}

/* ---- JSON ---- */

struct json_case {
	const char *json;
	const char *want_err; /* "" to succeed */
};

static const struct json_case json_cases[] = {
    {"{\"v\":1,\"rooms\":[]}", ""},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"1\"}]}]"
     "}",
     ""},
    {"[]", "not a JSON object"},
    {"{\"rooms\":[]}", "v: missing or not 1"},
    {"{\"v\":2,\"rooms\":[]}", "v: missing or not 1"},
    {"{\"v\":1}", "rooms: missing or not an array"},
    {"{\"v\":1,\"rooms\":[1]}", "rooms[0]: not an object"},
    {"{\"v\":1,\"rooms\":[{\"endpoints\":[]}]}", "rooms[0].name: missing or not a string"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a b\",\"endpoints\":[]}]}", "rooms[0].name: bad room name"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\\u0000\",\"endpoints\":[]}]}", "rooms[0].name: NUL byte"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[]}]}",
     "rooms[0].endpoints: missing, empty or not an array"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"1\"}]},"
     "{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"1\"}]}]}",
     "rooms[1].name: duplicate room 'a'"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[7]}]}",
     "rooms[0].endpoints[0]: not an object"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"X\",\"channel\":\"1\"}]}]"
     "}",
     "rooms[0].endpoints[0].connector: bad connector name"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\"}]}]}",
     "rooms[0].endpoints[0].channel: missing or not a string"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"\"}]}]"
     "}",
     "rooms[0].endpoints[0].channel: empty channel"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"a "
     "b\"}]}]}",
     "rooms[0].endpoints[0].channel: " TOKEN_MSG},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"a\","
     "\"mode\":\"both\"}]}]}",
     "rooms[0].endpoints[0].mode: expected inout, in or out"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"a\","
     "\"mode\":1}]}]}",
     "rooms[0].endpoints[0].mode: expected inout, in or out"},
    {"{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":\"x\",\"channel\":\"a\"},"
     "{\"connector\":\"x\",\"channel\":\"a\",\"mode\":\"in\"}]}]}",
     "rooms[0].endpoints[1]: endpoint is already in this room"},
};

static void test_from_json(void **state)
{
	(void)state;
	for (size_t i = 0; i < TR_ARRAY_LEN(json_cases); i++) {
		struct tr_rooms r;
		const char *err = from_json_text(json_cases[i].json, &r);
		if (strcmp(err, json_cases[i].want_err) != 0)
			fail_msg("case %zu: got '%s' want '%s'", i, err, json_cases[i].want_err);
		tr_rooms_cleanup(&r);
	}
}

static void test_to_json_mode_default(void **state)
{
	(void)state;
	struct tr_rooms r;
	assert_string_equal(
	    from_json_text("{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":"
	                   "[{\"connector\":\"x\",\"channel\":\"1\"}]}],\"extra\":true}",
	                   &r),
	    "");
	char *j = rooms_json(&r);
	assert_string_equal(j, "{\"v\":1,\"rooms\":[{\"name\":\"a\",\"endpoints\":[{\"connector\":"
	                       "\"x\",\"channel\":\"1\",\"mode\":\"inout\"}]}]}");
	free(j);
	tr_rooms_cleanup(&r);
}

/* ---- queries ---- */

static void test_connectors_channels(void **state)
{
	(void)state;
	static const char text[] = "[room a]\nirc-x = #a\nslack-y = C1\nirc-x = #b out\n"
	                           "[room b]\nmatrix-z = !r\nirc-x = #a in\nslack-y = C2\n";
	struct tr_rooms r;
	assert_int_equal(tr_rooms_parse(text, strlen(text), "t.ini", &r, NULL), TR_OK);
	size_t n = 99;
	const char **c = tr_rooms_connectors(&r, &n);
	assert_int_equal(n, 3);
	assert_string_equal(c[0], "irc-x");
	assert_string_equal(c[1], "slack-y");
	assert_string_equal(c[2], "matrix-z");
	assert_null(c[3]);
	free(c);
	const char **ch = tr_rooms_channels(&r, "irc-x", &n);
	assert_int_equal(n, 2);
	assert_string_equal(ch[0], "#a");
	assert_string_equal(ch[1], "#b");
	assert_null(ch[2]);
	free(ch);
	ch = tr_rooms_channels(&r, "slack-y", &n);
	assert_int_equal(n, 2);
	assert_string_equal(ch[0], "C1");
	assert_string_equal(ch[1], "C2");
	free(ch);
	ch = tr_rooms_channels(&r, "nobody", &n);
	assert_int_equal(n, 0);
	assert_null(ch[0]);
	free(ch);
	tr_rooms_cleanup(&r);

	struct tr_rooms empty = {0};
	c = tr_rooms_connectors(&empty, &n);
	assert_int_equal(n, 0);
	assert_null(c[0]);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good_files),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_text_cases),
	    cmocka_unit_test(test_lines_and_modes),
	    cmocka_unit_test(test_too_big),
	    cmocka_unit_test(test_errors_buffer_full),
	    cmocka_unit_test(test_from_json),
	    cmocka_unit_test(test_to_json_mode_default),
	    cmocka_unit_test(test_connectors_channels),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
