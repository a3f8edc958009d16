/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Unit tests of services/matrix/matrix_map.c: Matrix client events (shapes from the spec's event
 * schemas) to bus events, own-namespace filtering, puppet names, outgoing contents (HTML,
 * m.mentions, relations), deterministic transaction ids, reply fallbacks, registration YAML. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../services/matrix/matrix.h"

static const char *fake_display(void *arg, const char *room, const char *user)
{
	(void)arg;
	(void)room;
	return strcmp(user, "@alice:hs.org") == 0 ? "Alice A." : NULL;
}

static const struct matrix_map_ctx ctx = {.connector = "mx",
                                          .hs_url = "https://hs.org",
                                          .server_name = "hs.org",
                                          .bot_user = "@_trestle_bot:hs.org",
                                          .puppet_pattern = "_trestle_{network}_{id}",
                                          .display = fake_display};

struct map_case {
	const char *json;
	int rc;
	enum tr_event_type type;
	const char *id, *msgid, *text, *target, *reply_to, *thread, *reaction;
	bool removed;
};

#define EV(sender, type, content, extra)                                                           \
	"{\"type\":\"" type "\",\"sender\":\"" sender                                              \
	"\",\"event_id\":\"$e1\",\"room_id\":\"!r:hs.org\","                                       \
	"\"origin_server_ts\":1432735824653,\"content\":" content extra "}"

static const struct map_case cases[] = {
    {EV("@alice:hs.org", "m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"hi **there**\"}",
        ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "hi **there**"},
    {EV("@alice:hs.org", "m.room.message", "{\"msgtype\":\"m.notice\",\"body\":\"n\"}", ""), TR_OK,
     TR_EV_MESSAGE, "mx:message:$e1", "$e1", "n"},
    {EV("@alice:hs.org", "m.room.message", "{\"msgtype\":\"m.emote\",\"body\":\"waves\"}", ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "_waves_"},
    /* edit: the new content, msgid/target the original */
    {EV("@alice:hs.org", "m.room.message",
        "{\"msgtype\":\"m.text\",\"body\":\"* fixed\",\"m.new_content\":{\"msgtype\":\"m.text\","
        "\"body\":\"fixed\"},\"m.relates_to\":{\"rel_type\":\"m.replace\",\"event_id\":\"$o\"}}",
        ""),
     TR_OK, TR_EV_EDIT, "mx:edit:$e1", "$o", "fixed", "$o"},
    /* reply with a legacy fallback to strip */
    {EV("@alice:hs.org", "m.room.message",
        "{\"msgtype\":\"m.text\",\"body\":\"> <@bob:hs.org> orig\\n> more\\n\\nanswer\","
        "\"m.relates_to\":{\"m.in_reply_to\":{\"event_id\":\"$o\"}}}",
        ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "answer", NULL, "$o"},
    /* thread with a fallback reply: thread only */
    {EV("@alice:hs.org", "m.room.message",
        "{\"msgtype\":\"m.text\",\"body\":\"t\",\"m.relates_to\":{\"rel_type\":\"m.thread\","
        "\"event_id\":\"$root\",\"is_falling_back\":true,\"m.in_reply_to\":{\"event_id\":\"$root\"}"
        "}}",
        ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "t", NULL, NULL, "$root"},
    /* thread with a real reply inside it */
    {EV("@alice:hs.org", "m.room.message",
        "{\"msgtype\":\"m.text\",\"body\":\"t\",\"m.relates_to\":{\"rel_type\":\"m.thread\","
        "\"event_id\":\"$root\",\"is_falling_back\":false,\"m.in_reply_to\":{\"event_id\":\"$x\"}}"
        "}",
        ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "t", NULL, "$x", "$root"},
    {EV("@alice:hs.org", "m.reaction",
        "{\"m.relates_to\":{\"rel_type\":\"m.annotation\",\"event_id\":\"$o\",\"key\":\"👍\"}}", ""),
     TR_OK, TR_EV_REACTION, "mx:reaction:$e1", "$e1", NULL, "$o", NULL, NULL, "👍"},
    {EV("@alice:hs.org", "m.room.redaction", "{}", ",\"redacts\":\"$o\""), TR_OK, TR_EV_DELETE,
     "mx:delete:$e1", NULL, NULL, "$o"},
    {EV("@alice:hs.org", "m.room.redaction", "{\"redacts\":\"$v11\"}", ""), TR_OK, TR_EV_DELETE,
     "mx:delete:$e1", NULL, NULL, "$v11"},
    {EV("@alice:hs.org", "m.room.topic", "{\"topic\":\"new\"}", ",\"state_key\":\"\""), TR_OK,
     TR_EV_TOPIC, "mx:topic:$e1", NULL, "new"},
    {EV("@alice:hs.org", "m.room.member", "{\"membership\":\"join\"}",
        ",\"state_key\":\"@alice:hs.org\""),
     TR_OK, TR_EV_JOIN, "mx:join:$e1"},
    {EV("@alice:hs.org", "m.room.member", "{\"membership\":\"leave\"}",
        ",\"state_key\":\"@alice:hs.org\""),
     TR_OK, TR_EV_LEAVE, "mx:leave:$e1"},
    /* a profile change is not a join */
    {EV("@alice:hs.org", "m.room.member", "{\"membership\":\"join\",\"displayname\":\"A\"}",
        ",\"state_key\":\"@alice:hs.org\",\"unsigned\":{\"prev_content\":{\"membership\":\"join\"}"
        "}"),
     TR_E_NOTFOUND},
    /* own namespace never bridged back */
    {EV("@_trestle_slack_u1:hs.org", "m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"x\"}",
        ""),
     TR_E_NOTFOUND},
    {EV("@_trestle_bot:hs.org", "m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"x\"}", ""),
     TR_E_NOTFOUND},
    /* the same prefix on another server is someone else */
    {EV("@_trestle_slack_u1:other.org", "m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"x\"}",
        ""),
     TR_OK, TR_EV_MESSAGE, "mx:message:$e1", "$e1", "x"},
    {EV("@alice:hs.org", "m.room.message", "{\"msgtype\":\"m.text\",\"body\":\"x\"}",
        ",\"unsigned\":{\"redacted_because\":{}}"),
     TR_E_NOTFOUND},
    {EV("@alice:hs.org", "m.room.encrypted", "{\"algorithm\":\"m.megolm.v1.aes-sha2\"}", ""),
     TR_E_NOTFOUND},
    {EV("@alice:hs.org", "m.room.message", "{\"msgtype\":\"m.location\",\"body\":\"x\"}", ""),
     TR_E_NOTFOUND},
    {EV("@alice:hs.org", "m.reaction", "{\"m.relates_to\":{\"rel_type\":\"m.annotation\"}}", ""),
     TR_E_INVAL},
    {"{\"type\":\"m.room.message\",\"content\":{}}", TR_E_INVAL},
    {EV("@alice:hs.org", "m.room.message", "\"not an object\"", ""), TR_E_INVAL},
};

static void check_str(size_t i, const char *field, const char *got, const char *want)
{
	if ((got == NULL) != (want == NULL) || (got && strcmp(got, want) != 0))
		fail_msg("case %zu: %s = %s, want %s", i, field, got ? got : "(null)",
		         want ? want : "(null)");
}

static void test_map_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct map_case *k = &cases[i];
		json_t *j = json_loads(k->json, 0, NULL);
		if (!j)
			fail_msg("case %zu: bad JSON in the test", i);
		struct tr_event ev;
		int rc = matrix_map_event(j, NULL, &ctx, &ev);
		json_decref(j);
		if (rc != k->rc)
			fail_msg("case %zu: rc %d, want %d", i, rc, k->rc);
		if (rc != TR_OK)
			continue;
		assert_int_equal(ev.type, k->type);
		check_str(i, "id", ev.id, k->id);
		check_str(i, "msgid", ev.msgid, k->msgid);
		check_str(i, "text", ev.text, k->text);
		check_str(i, "target", ev.target, k->target);
		check_str(i, "reply_to", ev.reply_to, k->reply_to);
		check_str(i, "thread", ev.thread, k->thread);
		check_str(i, "reaction", ev.reaction, k->reaction);
		check_str(i, "channel", ev.channel, "!r:hs.org");
		assert_int_equal(ev.ts, 1432735824653LL);
		assert_non_null(ev.author.id);
		if (strcmp(ev.author.id, "@alice:hs.org") == 0)
			check_str(i, "display", ev.author.display, "Alice A.");
		tr_event_cleanup(&ev);
	}
}

static void test_attachment(void **state)
{
	(void)state;
	json_t *j =
	    json_loads(EV("@alice:hs.org", "m.room.message",
	                  "{\"msgtype\":\"m.image\",\"body\":\"cat.png\",\"url\":\"mxc://hs.org/"
	                  "abc\",\"info\":{\"mimetype\":\"image/png\",\"size\":42}}",
	                  ""),
	               0, NULL);
	struct tr_event ev;
	assert_int_equal(matrix_map_event(j, NULL, &ctx, &ev), TR_OK);
	assert_int_equal(ev.n_attachments, 1);
	assert_string_equal(ev.attachments[0].url,
	                    "https://hs.org/_matrix/media/v3/download/hs.org/abc");
	assert_string_equal(ev.attachments[0].name, "cat.png");
	assert_string_equal(ev.attachments[0].mime, "image/png");
	assert_int_equal(ev.attachments[0].size, 42);
	tr_event_cleanup(&ev);
	json_decref(j);
	/* A hostile URI is no attachment. */
	j = json_loads(EV("@alice:hs.org", "m.room.message",
	                  "{\"msgtype\":\"m.file\",\"body\":\"f\",\"url\":\"mxc://../../x\"}", ""),
	               0, NULL);
	assert_int_equal(matrix_map_event(j, NULL, &ctx, &ev), TR_E_INVAL);
	json_decref(j);
}

static void test_puppet_names(void **state)
{
	(void)state;
	static const char *const cases_[][3] = {
	    {"slack", "U024BE7LH", "_trestle_slack__u024_b_e7_l_h"},
	    {"irc", "nick|away", "_trestle_irc_nick=7caway"},
	    {"xmpp", "a@b.org/r", "_trestle_xmpp_a=40b.org=2fr"},
	    {"test", "U-1", "_trestle_test__u-1"},
	    {"tg", "é", "_trestle_tg_=c3=a9"},
	};
	for (size_t i = 0; i < sizeof(cases_) / sizeof(cases_[0]); i++) {
		char *lp =
		    matrix_puppet_localpart("_trestle_{network}_{id}", cases_[i][0], cases_[i][1]);
		assert_string_equal(lp, cases_[i][2]);
		char *uid = NULL;
		uid = malloc(strlen(lp) + 16);
		snprintf(uid, strlen(lp) + 16, "@%s:hs.org", lp);
		assert_true(matrix_is_own(&ctx, uid));
		free(uid);
		free(lp);
	}
	assert_false(matrix_is_own(&ctx, "@alice:hs.org"));
	assert_false(matrix_is_own(&ctx, "@_trestle_:hs.org"));
	/* Too long for a user id. */
	char big[400];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_null(matrix_puppet_localpart("_trestle_{network}_{id}", "x", big));
}

static struct tr_event out_event(enum tr_event_type t, const char *text)
{
	struct tr_event ev = {.type = t, .id = "slack:message:1", .text = (char *)text};
	ev.dest.connector = "mx";
	ev.dest.channel = "!r:hs.org";
	return ev;
}

static void test_outgoing_content(void **state)
{
	(void)state;
	struct tr_event ev = out_event(TR_EV_MESSAGE, "@room **hi** <script>x</script>");
	json_t *c = matrix_message_content(&ev, NULL, NULL);
	assert_non_null(c);
	assert_string_equal(json_string_value(json_object_get(c, "msgtype")), "m.text");
	assert_true(json_is_object(json_object_get(c, "m.mentions")));
	assert_int_equal(json_object_size(json_object_get(c, "m.mentions")), 0);
	const char *fb = json_string_value(json_object_get(c, "formatted_body"));
	assert_non_null(strstr(fb, "<strong>hi</strong>"));
	assert_non_null(strstr(fb, "&lt;script&gt;"));
	assert_null(strstr(fb, "<script"));
	assert_null(json_object_get(c, "m.relates_to"));
	json_decref(c);

	/* Plain text: no formatted_body. */
	ev = out_event(TR_EV_MESSAGE, "just words");
	c = matrix_message_content(&ev, NULL, NULL);
	assert_null(json_object_get(c, "formatted_body"));
	json_decref(c);

	/* Bot mode prefix, with the name's markup escaped. */
	ev = out_event(TR_EV_MESSAGE, "hello");
	c = matrix_message_content(&ev, "<{name}> ", "*Al*");
	assert_string_equal(json_string_value(json_object_get(c, "body")), "<*Al*> hello");
	assert_null(json_object_get(c, "formatted_body"));
	json_decref(c);
	c = matrix_message_content(&ev, "**{name}**: ", "<b>Al</b>");
	assert_string_equal(json_string_value(json_object_get(c, "formatted_body")),
	                    "<strong>&lt;b&gt;Al&lt;/b&gt;</strong>: hello");
	json_decref(c);

	/* Reply, thread, edit. */
	ev = out_event(TR_EV_MESSAGE, "r");
	ev.dest.reply_to = "$p";
	c = matrix_message_content(&ev, NULL, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(
	        json_object_get(json_object_get(c, "m.relates_to"), "m.in_reply_to"), "event_id")),
	    "$p");
	json_decref(c);
	ev.dest.thread = "$root";
	ev.dest.reply_to = NULL;
	c = matrix_message_content(&ev, NULL, NULL);
	json_t *rel = json_object_get(c, "m.relates_to");
	assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.thread");
	assert_string_equal(json_string_value(json_object_get(rel, "event_id")), "$root");
	assert_true(json_is_true(json_object_get(rel, "is_falling_back")));
	json_decref(c);
	ev = out_event(TR_EV_EDIT, "new **text**");
	ev.dest.target = "$orig";
	c = matrix_message_content(&ev, NULL, NULL);
	assert_string_equal(json_string_value(json_object_get(c, "body")), "* new **text**");
	rel = json_object_get(c, "m.relates_to");
	assert_string_equal(json_string_value(json_object_get(rel, "rel_type")), "m.replace");
	assert_string_equal(json_string_value(json_object_get(rel, "event_id")), "$orig");
	json_t *nc = json_object_get(c, "m.new_content");
	assert_string_equal(json_string_value(json_object_get(nc, "body")), "new **text**");
	assert_string_equal(json_string_value(json_object_get(nc, "formatted_body")),
	                    "new <strong>text</strong>");
	assert_true(json_is_object(json_object_get(nc, "m.mentions")));
	assert_true(json_is_object(json_object_get(c, "m.mentions")));
	json_decref(c);
	ev = out_event(TR_EV_REACTION, NULL);
	assert_null(matrix_message_content(&ev, NULL, NULL));
}

static void test_txn_ids(void **state)
{
	(void)state;
	struct tr_event a = out_event(TR_EV_MESSAGE, "x");
	struct tr_event b = a;
	char *t1 = matrix_txn_id(&a, 0), *t2 = matrix_txn_id(&b, 0), *t3 = matrix_txn_id(&a, 1);
	assert_string_equal(t1, t2);
	assert_string_not_equal(t1, t3);
	b.dest.channel = "!other:hs.org";
	char *t4 = matrix_txn_id(&b, 0);
	assert_string_not_equal(t1, t4);
	b = a;
	b.id = "slack:message:2";
	char *t5 = matrix_txn_id(&b, 0);
	assert_string_not_equal(t1, t5);
	free(t1);
	free(t2);
	free(t3);
	free(t4);
	free(t5);
}

static void test_fallback_and_yaml(void **state)
{
	(void)state;
	char *s = matrix_strip_reply_fallback("> <@a:b> q\n\nanswer");
	assert_string_equal(s, "answer");
	free(s);
	s = matrix_strip_reply_fallback("> a quote of my own\n\ntext");
	assert_string_equal(s, "> a quote of my own\n\ntext");
	free(s);
	s = matrix_strip_reply_fallback("> <@a:b> unterminated");
	assert_string_equal(s, "> <@a:b> unterminated");
	free(s);
	struct matrix_cfg cfg = {.server_name = "ex.org",
	                         .as_id = "trestle",
	                         .as_listen = "0.0.0.0:29330",
	                         .as_url = "http://bridge:29330",
	                         .bot_localpart = "_trestle_bot",
	                         .puppet_pattern = "_trestle_{network}_{id}"};
	char *y = matrix_registration_yaml(&cfg, "AS", "HS");
	assert_non_null(strstr(y, "url: \"http://bridge:29330\""));
	assert_non_null(strstr(y, "as_token: \"AS\""));
	assert_non_null(strstr(y, "hs_token: \"HS\""));
	assert_non_null(strstr(y, "rate_limited: false"));
	assert_non_null(strstr(y, "regex: '@_trestle_.*:ex\\.org'"));
	free(y);
	char *u = matrix_mxc_http("https://hs", "mxc://s/id");
	assert_string_equal(u, "https://hs/_matrix/media/v3/download/s/id");
	free(u);
	assert_null(matrix_mxc_http("https://hs", "https://x/y"));
	assert_null(matrix_mxc_http("https://hs", "mxc://noslash"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_map_cases),    cmocka_unit_test(test_attachment),
	    cmocka_unit_test(test_puppet_names), cmocka_unit_test(test_outgoing_content),
	    cmocka_unit_test(test_txn_ids),      cmocka_unit_test(test_fallback_and_yaml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
