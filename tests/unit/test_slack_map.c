/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* services/slack pure mapping: Events API payloads (the shapes of
 * ../shared/specs/slack/samples/events, values filled in) -> struct tr_event, own posts
 * dropped, Slack errors -> enum tr_err, reaction names <-> Unicode, rate-limit buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include "../../services/slack/slack.h"

static const struct slack_self self = {.user_id = "U0BOT", .bot_id = "B0BOT", .app_id = "A0APP"};

static const struct slack_person alice = {
    .name = "alice", .display = "Alice Smith", .avatar = "https://a.example/alice.png"};

static const struct slack_person *person(void *arg, const char *id)
{
	(void)arg;
	return strcmp(id, "U0ALICE") == 0 ? &alice : NULL;
}

static const char *name(void *arg, const char *id)
{
	(void)arg;
	return strcmp(id, "U0ALICE") == 0 ? "Alice Smith" : NULL;
}

static int map(const char *js, struct tr_event *ev)
{
	json_t *e = json_loads(js, 0, NULL);
	assert_non_null(e);
	int rc = slack_map_event("slack-t", e, &self, person, name, NULL, ev);
	json_decref(e);
	return rc;
}

static void test_message(void **state)
{
	(void)state;
	struct tr_event ev;
	assert_int_equal(map("{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U0ALICE\","
	                     "\"text\":\"hi *there* &lt;3 <@U0ALICE>\",\"ts\":\"1.000100\","
	                     "\"event_ts\":\"1.000100\",\"channel_type\":\"channel\"}",
	                     &ev),
	                 TR_OK);
	assert_int_equal(ev.type, TR_EV_MESSAGE);
	assert_string_equal(ev.id, "slack-t:message:C1:1.000100");
	assert_string_equal(ev.channel, "C1");
	assert_string_equal(ev.msgid, "1.000100");
	assert_string_equal(ev.author.id, "U0ALICE");
	assert_string_equal(ev.author.name, "alice");
	assert_string_equal(ev.author.display, "Alice Smith");
	assert_string_equal(ev.author.avatar, "https://a.example/alice.png");
	assert_string_equal(ev.text, "hi **there** \\<3 @Alice Smith");
	assert_null(ev.thread);
	tr_event_cleanup(&ev);
}

static void test_thread_reply_and_broadcast(void **state)
{
	(void)state;
	static const char *const subtypes[] = {"", ",\"subtype\":\"thread_broadcast\""};
	for (size_t i = 0; i < TR_ARRAY_LEN(subtypes); i++) {
		char js[512];
		snprintf(
		    js, sizeof(js),
		    "{\"type\":\"message\"%s,\"channel\":\"C1\",\"user\":\"U0BOB\",\"text\":\"r\","
		    "\"ts\":\"2.000000\",\"thread_ts\":\"1.000000\"}",
		    subtypes[i]);
		struct tr_event ev;
		assert_int_equal(map(js, &ev), TR_OK);
		assert_string_equal(ev.thread, "1.000000");
		assert_string_equal(ev.reply_to, "1.000000");
		assert_string_equal(ev.author.name, "U0BOB");
		tr_event_cleanup(&ev);
	}
}

static void test_own_posts_dropped(void **state)
{
	(void)state;
	static const char *const own[] = {
	    "{\"type\":\"message\",\"channel\":\"C1\",\"bot_id\":\"B0BOT\",\"text\":\"x\",\"ts\":"
	    "\"1.0\"}",
	    "{\"type\":\"message\",\"subtype\":\"bot_message\",\"channel\":\"C1\",\"app_id\":"
	    "\"A0APP\",\"username\":\"Carol\",\"text\":\"x\",\"ts\":\"1.0\"}",
	    "{\"type\":\"message\",\"channel\":\"C1\",\"user\":\"U0BOT\",\"text\":\"x\",\"ts\":"
	    "\"1.0\"}",
	    "{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":\"C1\",\"message\":{"
	    "\"bot_id\":\"B0BOT\",\"text\":\"y\",\"ts\":\"1.0\"},\"previous_message\":{\"text\":"
	    "\"x\"}}",
	    "{\"type\":\"message\",\"subtype\":\"message_deleted\",\"channel\":\"C1\","
	    "\"deleted_ts\":\"1.0\",\"previous_message\":{\"bot_id\":\"B0BOT\",\"ts\":\"1.0\"}}",
	    "{\"type\":\"reaction_added\",\"user\":\"U0BOT\",\"item\":{\"type\":\"message\","
	    "\"channel\":\"C1\",\"ts\":\"1.0\"},\"reaction\":\"tada\",\"event_ts\":\"3.0\"}",
	    /* metadata-only change (a reply count): not an edit */
	    "{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":\"C1\",\"message\":{"
	    "\"user\":\"U0ALICE\",\"text\":\"same\",\"ts\":\"1.0\",\"reply_count\":1},"
	    "\"previous_message\":{\"text\":\"same\"}}",
	    "{\"type\":\"message\",\"subtype\":\"channel_join\",\"channel\":\"C1\",\"user\":"
	    "\"U0ALICE\",\"text\":\"joined\",\"ts\":\"1.0\"}",
	    "{\"type\":\"app_mention\",\"channel\":\"C1\",\"user\":\"U0ALICE\",\"text\":\"x\"}",
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(own); i++) {
		struct tr_event ev;
		int rc = map(own[i], &ev);
		if (rc != TR_E_NOTFOUND)
			fail_msg("case %zu: rc %d", i, rc);
	}
}

static void test_edit_delete(void **state)
{
	(void)state;
	struct tr_event ev;
	assert_int_equal(map("{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":"
	                     "\"C1\",\"hidden\":true,\"message\":{\"type\":\"message\",\"user\":"
	                     "\"U0ALICE\",\"text\":\"new _text_\",\"ts\":\"1.000100\",\"edited\":{"
	                     "\"user\":\"U0ALICE\",\"ts\":\"5.000000\"}},\"previous_message\":{"
	                     "\"text\":\"old\",\"ts\":\"1.000100\"},\"event_ts\":\"5.000001\","
	                     "\"ts\":\"5.000001\"}",
	                     &ev),
	                 TR_OK);
	assert_int_equal(ev.type, TR_EV_EDIT);
	assert_string_equal(ev.id, "slack-t:edit:C1:1.000100:5.000000");
	assert_string_equal(ev.msgid, "1.000100");
	assert_string_equal(ev.target, "1.000100");
	assert_string_equal(ev.text, "new _text_");
	tr_event_cleanup(&ev);
	assert_int_equal(map("{\"type\":\"message\",\"subtype\":\"message_deleted\",\"channel\":"
	                     "\"C1\",\"deleted_ts\":\"1.000100\",\"previous_message\":{\"user\":"
	                     "\"U0ALICE\",\"text\":\"old\",\"ts\":\"1.000100\"},\"event_ts\":"
	                     "\"6.0\",\"ts\":\"6.0\"}",
	                     &ev),
	                 TR_OK);
	assert_int_equal(ev.type, TR_EV_DELETE);
	assert_string_equal(ev.id, "slack-t:delete:C1:1.000100");
	assert_string_equal(ev.target, "1.000100");
	assert_string_equal(ev.author.id, "U0ALICE");
	tr_event_cleanup(&ev);
}

static void test_reactions(void **state)
{
	(void)state;
	struct tr_event ev;
	assert_int_equal(
	    map("{\"type\":\"reaction_added\",\"user\":\"U0ALICE\",\"item\":{"
	        "\"type\":\"message\",\"channel\":\"C1\",\"ts\":\"1.0\"},"
	        "\"reaction\":\"thumbsup\",\"item_user\":\"U0BOB\",\"event_ts\":\"3.0\"}",
	        &ev),
	    TR_OK);
	assert_int_equal(ev.type, TR_EV_REACTION);
	assert_string_equal(ev.reaction, "\U0001F44D");
	assert_string_equal(ev.target, "1.0");
	assert_false(ev.removed);
	tr_event_cleanup(&ev);
	assert_int_equal(map("{\"type\":\"reaction_removed\",\"user\":\"U0ALICE\",\"item\":{"
	                     "\"type\":\"message\",\"channel\":\"C1\",\"ts\":\"1.0\"},"
	                     "\"reaction\":\"partyparrot\",\"event_ts\":\"4.0\"}",
	                     &ev),
	                 TR_OK);
	assert_string_equal(ev.reaction, ":partyparrot:");
	assert_true(ev.removed);
	assert_string_equal(ev.id, "slack-t:reaction:C1:1.0:U0ALICE:partyparrot:remove:4.0");
	tr_event_cleanup(&ev);
}

static void test_join_topic_files_me(void **state)
{
	(void)state;
	struct tr_event ev;
	assert_int_equal(map("{\"type\":\"member_joined_channel\",\"user\":\"U0ALICE\",\"channel\":"
	                     "\"C1\",\"channel_type\":\"C\",\"event_ts\":\"7.0\"}",
	                     &ev),
	                 TR_OK);
	assert_int_equal(ev.type, TR_EV_JOIN);
	tr_event_cleanup(&ev);
	assert_int_equal(
	    map("{\"type\":\"message\",\"subtype\":\"channel_topic\",\"channel\":"
	        "\"C1\",\"user\":\"U0ALICE\",\"topic\":\"Co-op news\",\"text\":\"set\","
	        "\"ts\":\"8.0\"}",
	        &ev),
	    TR_OK);
	assert_int_equal(ev.type, TR_EV_TOPIC);
	assert_string_equal(ev.text, "Co-op news");
	tr_event_cleanup(&ev);
	assert_int_equal(
	    map("{\"type\":\"message\",\"subtype\":\"file_share\",\"channel\":\"C1\","
	        "\"user\":\"U0ALICE\",\"text\":\"\",\"ts\":\"9.0\",\"files\":[{\"id\":"
	        "\"F1\",\"name\":\"cat.png\",\"mimetype\":\"image/png\",\"size\":52311,"
	        "\"url_private\":\"https://files.example/cat.png\"}]}",
	        &ev),
	    TR_OK);
	assert_int_equal(ev.n_attachments, 1);
	assert_string_equal(ev.attachments[0].url, "https://files.example/cat.png");
	assert_int_equal(ev.attachments[0].size, 52311);
	tr_event_cleanup(&ev);
	assert_int_equal(map("{\"type\":\"message\",\"subtype\":\"me_message\",\"channel\":\"C1\","
	                     "\"user\":\"U0ALICE\",\"text\":\"waves\",\"ts\":\"10.0\"}",
	                     &ev),
	                 TR_OK);
	assert_string_equal(ev.text, "_waves_");
	tr_event_cleanup(&ev);
}

static void test_malformed(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{\"channel\":\"C1\"}",
	    "{\"type\":\"message\",\"text\":\"no channel\",\"ts\":\"1.0\"}",
	    "{\"type\":\"message\",\"channel\":\"C1\",\"text\":\"no ts\"}",
	    "{\"type\":\"reaction_added\",\"item\":{\"type\":\"message\"},\"reaction\":\"x\"}",
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(bad); i++) {
		struct tr_event ev;
		assert_int_equal(map(bad[i], &ev), TR_E_INVAL);
	}
}

static void test_event_ids(void **state)
{
	(void)state;
	json_t *e = json_loads("{\"type\":\"message\",\"user\":\"U1\",\"text\":\"<@U2> <#C3|x> "
	                       "<@U1> <!here>\"}",
	                       0, NULL);
	char **ids = NULL;
	size_t n = 0;
	slack_event_ids(e, &ids, &n);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], "U1");
	assert_string_equal(ids[1], "U2");
	assert_string_equal(ids[2], "C3");
	slack_ids_free(ids, n);
	json_decref(e);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		const char *error;
		int err;
		bool auth;
	} cases[] = {
	    {"ratelimited", TR_E_RATELIMIT, false},
	    {"invalid_auth", TR_E_AUTH, true},
	    {"not_authed", TR_E_AUTH, true},
	    {"not_allowed_token_type", TR_E_CONFIG, true},
	    {"missing_scope", TR_E_FORBIDDEN, false},
	    {"not_in_channel", TR_E_FORBIDDEN, false},
	    {"channel_not_found", TR_E_NOTFOUND, false},
	    {"message_not_found", TR_E_NOTFOUND, false},
	    {"msg_too_long", TR_E_TOOBIG, false},
	    {"something_new", TR_E_PROTO, false},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		assert_int_equal(slack_error_to_tr(cases[i].error), cases[i].err);
		assert_int_equal(slack_error_is_auth(cases[i].error), cases[i].auth);
	}
}

static void test_emoji(void **state)
{
	(void)state;
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"\U0001F44D", "+1"},
	    {"\u2764\uFE0F", "heart"},
	    {"\u2764", "heart"},
	    {"\U0001F389", "tada"},
	    {":partyparrot:", "partyparrot"},
	    {"thumbsup", "thumbsup"},
	    {"\U0001F9A9", NULL},
	    {"<!channel>", NULL},
	    {"", NULL},
	};
	for (size_t i = 0; i < TR_ARRAY_LEN(cases); i++) {
		char *got = slack_reaction_name(cases[i].in);
		if (cases[i].want)
			assert_string_equal(got, cases[i].want);
		else
			assert_null(got);
		free(got);
	}
	assert_string_equal(slack_emoji_to_unicode("thumbsup"), "\U0001F44D");
	assert_string_equal(slack_emoji_to_unicode("+1"), "\U0001F44D");
	assert_null(slack_emoji_to_unicode("partyparrot"));
}

static void test_buckets(void **state)
{
	(void)state;
	const struct slack_tier *t = &slack_tiers[slack_tier_index("chat.postMessage")];
	assert_string_equal(t->method, "chat.postMessage");
	assert_null(slack_tiers[slack_tier_index("no.such")].method);
	struct slack_bucket b = {0};
	int64_t now = 1000000;
	for (int i = 0; i < (int)t->burst; i++)
		assert_int_equal(slack_bucket_take(&b, t, now), 0);
	uint32_t wait = slack_bucket_take(&b, t, now);
	assert_true(wait > 0 && wait <= 1000);
	assert_int_equal(slack_bucket_take(&b, t, now + wait), 0);
	b.pause_until_ms = now + 5000;
	assert_int_equal(slack_bucket_take(&b, t, now + 2000), 3000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_message),
	    cmocka_unit_test(test_thread_reply_and_broadcast),
	    cmocka_unit_test(test_own_posts_dropped),
	    cmocka_unit_test(test_edit_delete),
	    cmocka_unit_test(test_reactions),
	    cmocka_unit_test(test_join_topic_files_me),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_event_ids),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_emoji),
	    cmocka_unit_test(test_buckets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
