/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of the router's pure parts: the routing table (fan-out, modes, no echo, one copy
 * per destination across rooms) and the journal (records not done are replayed, in order,
 * after a reopen; done ones are not). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "alloc.h"
#include "../../services/router/router.h"

static struct rt_table *table_from(const char *text)
{
	struct tr_rooms rooms = {0};
	struct tr_buf errs;
	tr_buf_init(&errs, 4096);
	assert_int_equal(tr_rooms_parse(text, strlen(text), "t.ini", &rooms, &errs), TR_OK);
	tr_buf_cleanup(&errs);
	struct rt_table *t = rt_table_new(&rooms);
	tr_rooms_cleanup(&rooms);
	return t;
}

/* The destinations of an endpoint as "conn/chan@room conn/chan@room", or "-" if none, or
 * "(none)" if the endpoint is in no room, or "(out-only)". */
static const char *dests_of(const struct rt_table *t, const char *conn, const char *chan)
{
	static char out[512];
	const struct rt_origin *o = rt_table_lookup(t, conn, chan);
	if (!o)
		return "(none)";
	if (!o->can_send)
		return "(out-only)";
	out[0] = '\0';
	for (size_t i = 0; i < o->n_dests; i++) {
		size_t n = strlen(out);
		const struct rt_dest *d = &t->dests[o->first + i];
		snprintf(out + n, sizeof(out) - n, "%s%s/%s@%s", i ? " " : "",
		         rt_dest_origin(t, d)->connector, rt_dest_origin(t, d)->channel,
		         rt_dest_room(t, d));
	}
	return out[0] ? out : "-";
}

static void test_endpoint_key(void **state)
{
	(void)state;
	char *k = rt_endpoint_key("matrix-main", "!abc:example.org");
	assert_string_equal(k, "matrix-main:16:!abc:example.org");
	free(k);
	/* Channels with ':' cannot make two endpoints collide: the length comes first. */
	char *a = rt_endpoint_key("a", "b:1:c");
	char *b = rt_endpoint_key("a", "b");
	assert_string_not_equal(a, b);
	free(a);
	free(b);
}

static void test_fanout_and_modes(void **state)
{
	(void)state;
	struct rt_table *t = table_from("[room r1]\n"
	                                "slack = C1\n"
	                                "matrix = !m:x\n"
	                                "irc = #r1 in\n"
	                                "tg = -100 out\n");
	static const struct {
		const char *conn, *chan, *want;
	} cases[] = {
	    {"slack", "C1", "matrix/!m:x@r1 tg/-100@r1"},
	    {"matrix", "!m:x", "slack/C1@r1 tg/-100@r1"},
	    {"irc", "#r1", "slack/C1@r1 matrix/!m:x@r1 tg/-100@r1"},
	    {"tg", "-100", "(out-only)"},
	    {"slack", "C2", "(none)"},
	    {"nobody", "C1", "(none)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(dests_of(t, cases[i].conn, cases[i].chan), cases[i].want);
	rt_table_unref(t);
}

static void test_shared_endpoint_one_copy(void **state)
{
	(void)state;
	/* slack/C1 is in two rooms that both hold matrix/!m:x: matrix gets one copy. */
	struct rt_table *t = table_from("[room a]\nslack = C1\nmatrix = !m:x\n"
	                                "[room b]\nslack = C1\nmatrix = !m:x\nirc = #b\n"
	                                "[room c]\nirc = #b\nslack = C1 out\n");
	assert_string_equal(dests_of(t, "slack", "C1"), "matrix/!m:x@a irc/#b@b");
	assert_string_equal(dests_of(t, "irc", "#b"), "slack/C1@b matrix/!m:x@b");
	/* Same connector twice in a room: the two channels see each other. */
	rt_table_unref(t);
	t = table_from("[room twin]\nirc = #one\nirc = #two\n");
	assert_string_equal(dests_of(t, "irc", "#one"), "irc/#two@twin");
	rt_table_unref(t);
}

static void test_table_refcount(void **state)
{
	(void)state;
	struct rt_table *t = table_from("[room a]\nx = 1\ny = 2\n");
	rt_table_ref(t);
	rt_table_unref(t);
	assert_string_equal(dests_of(t, "x", "1"), "y/2@a");
	rt_table_unref(t); /* ASan reports a leak or double free if the count is wrong */
}

static void test_rooms_dump_matches_jansson(void **state)
{
	(void)state;
	static const char *const files[] = {
	    "[room a]\nslack = C1\nmatrix = !m:x out\n[room b.2]\nirc = #a\"b\\\\c in\n",
	    "",
	    "[room x]\nq = \xc3\xa9t\xc3\xa9\n",
	};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		struct tr_rooms rooms = {0};
		struct tr_buf errs, text;
		tr_buf_init(&errs, 4096);
		tr_buf_init(&text, 1 << 20);
		assert_int_equal(tr_rooms_parse(files[i], strlen(files[i]), "t.ini", &rooms, &errs),
		                 TR_OK);
		json_t *j = tr_rooms_to_json(&rooms);
		char *want = json_dumps(j, JSON_COMPACT);
		assert_int_equal(tr_rooms_dump(&rooms, &text), TR_OK);
		assert_string_equal(tr_buf_str(&text), want);
		free(want);
		json_decref(j);
		tr_buf_cleanup(&text);
		tr_buf_cleanup(&errs);
		tr_rooms_cleanup(&rooms);
	}
}

struct replayed {
	int n;
	char kinds[8];
	char payloads[8][32];
	char tokens[8][32];
};

static void on_replay(void *arg, uint64_t seq, char kind, const char *token, const char *conn,
                      const char *payload, size_t len)
{
	(void)seq;
	struct replayed *r = arg;
	assert_true(r->n < 8);
	assert_string_equal(conn, "irc");
	r->kinds[r->n] = kind;
	snprintf(r->payloads[r->n], sizeof(r->payloads[0]), "%.*s", (int)len, payload);
	snprintf(r->tokens[r->n], sizeof(r->tokens[0]), "%s", token);
	r->n++;
}

static void test_journal_replay(void **state)
{
	(void)state;
	char dir[] = "/tmp/trestle-journal-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char err[TR_ERR_LEN];
	struct replayed r = {0};
	struct journal *j = journal_open(dir, on_replay, &r, err);
	assert_non_null(j);
	assert_int_equal(r.n, 0);
	uint64_t s1, s2, s3, s4;
	assert_int_equal(journal_append(j, 'i', "t.1", "irc", "one", 3, &s1), TR_OK);
	assert_int_equal(journal_append(j, 'a', "t.2", "irc", "two\nlines", 9, &s2), TR_OK);
	assert_int_equal(journal_append(j, 'i', "t.3", "irc", "three", 5, &s3), TR_OK);
	journal_done(j, s1);
	assert_int_equal(journal_append(j, 'i', "t.4", "irc", "", 0, &s4), TR_OK);
	journal_done(j, s4);
	journal_close(j); /* as after a SIGKILL: nothing more is written */

	j = journal_open(dir, on_replay, &r, err);
	assert_non_null(j);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.kinds[0], 'a');
	assert_string_equal(r.payloads[0], "two\nlines");
	assert_string_equal(r.tokens[0], "t.2");
	assert_string_equal(r.payloads[1], "three");
	/* Replayed records are journalled again; once done, a third open replays nothing. */
	journal_done(j, 1);
	journal_done(j, 2);
	journal_close(j);
	memset(&r, 0, sizeof(r));
	j = journal_open(dir, on_replay, &r, err);
	assert_non_null(j);
	assert_int_equal(r.n, 0);
	journal_close(j);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "%s/router-journal.2", dir);
	unlink(cmd);
	rmdir(dir);
}

static void test_journal_bad_dir(void **state)
{
	(void)state;
	char err[TR_ERR_LEN] = "";
	struct replayed r = {0};
	struct journal *j = journal_open("/proc/trestle-cannot-be-here", on_replay, &r, err);
	assert_null(j);
	assert_non_null(strstr(err, "TRESTLE_STATE_DIR"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_endpoint_key),
	    cmocka_unit_test(test_fanout_and_modes),
	    cmocka_unit_test(test_shared_endpoint_one_copy),
	    cmocka_unit_test(test_table_refcount),
	    cmocka_unit_test(test_rooms_dump_matches_jansson),
	    cmocka_unit_test(test_journal_replay),
	    cmocka_unit_test(test_journal_bad_dir),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
