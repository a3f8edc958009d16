/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-discord's pure parts: Discord markdown escaping and rendering, token resolution,
 * message mapping (own and webhook messages dropped), webhook usernames, rate-limit buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../services/discord/discord.h"
#include "format_discord.h"

static void test_render(void **s)
{
	(void)s;
	static const struct {
		const char *md, *want;
	} t[] = {
	    {"hello **world**", "hello **world**"},
	    {"*a* and `c*d`", "*a* and `c*d`"},
	    {"a\\_b\\*c", "a\\_b\\*c"},
	    {"snake_case ~~x~~ ||spoil||", "snake\\_case \\~\\~x\\~\\~ \\|\\|spoil\\|\\|"},
	    {"see https://x.org/a_b_c now", "see https://x.org/a_b_c now"},
	    {"[site](https://x.org)", "[site](<https://x.org>)"},
	    {"\\# not a heading", "\\# not a heading"},
	    {"> quoted", "> quoted"},
	    {"@everyone hi", "@\xe2\x81\xa0"
	                     "everyone hi"},
	    {"ping \\<@&123>", "ping \\<\xe2\x81\xa0"
	                       "@&123>"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *out = NULL;
		assert_int_equal(tr_format_discord(t[i].md, strlen(t[i].md), &out), TR_OK);
		assert_string_equal(out, t[i].want);
		free(out);
	}
}

static void test_role_mention_inert(void **s)
{
	(void)s;
	char *out = NULL;
	const char *md = "hi <@&1400> and <@99>";
	assert_int_equal(tr_format_discord(md, strlen(md), &out), TR_OK);
	/* No live "<@" token survives: each is escaped or broken. */
	for (const char *p = out; (p = strstr(p, "<@")); p++)
		assert_true(p > out && (p[-1] == '\\' || p[2] == '\xe2'));
	free(out);
}

static const char *names(void *arg, char kind, const char *id)
{
	(void)arg;
	if (kind == '&' && strcmp(id, "7") == 0)
		return "mods";
	if (kind == '#' && strcmp(id, "5") == 0)
		return "general";
	return NULL;
}

static void test_to_commonmark(void **s)
{
	(void)s;
	static const struct {
		const char *in, *want;
	} t[] = {
	    {"hi <@&7> in <#5>", "hi @mods in #general"},
	    {"<:party:123> <a:x:9>", ":party: :x:"},
	    {"<@42> unknown", "@42 unknown"},
	    {"a < b > c", "a < b > c"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *out = NULL;
		assert_int_equal(
		    tr_discord_to_commonmark(t[i].in, strlen(t[i].in), names, NULL, &out), TR_OK);
		assert_string_equal(out, t[i].want);
		free(out);
	}
}

static bool own_hook(void *arg, const char *id)
{
	(void)arg;
	return strcmp(id, "900") == 0;
}

static void test_map_message(void **s)
{
	(void)s;
	struct dc_map_ctx ctx = {.connector = "dc", .self_id = "1", .own_webhook = own_hook};
	static const struct {
		const char *json;
		bool update;
		int rc;
		const char *id;
	} t[] = {
	    {"{\"id\":\"10\",\"channel_id\":\"5\",\"type\":0,\"content\":\"hi\","
	     "\"author\":{\"id\":\"2\",\"username\":\"alice\"}}",
	     false, TR_OK, "dc:message:10"},
	    {"{\"id\":\"11\",\"channel_id\":\"5\",\"type\":0,\"content\":\"me\","
	     "\"author\":{\"id\":\"1\",\"username\":\"bot\"}}",
	     false, TR_E_NOTFOUND, NULL},
	    {"{\"id\":\"12\",\"channel_id\":\"5\",\"type\":0,\"content\":\"x\",\"webhook_id\":"
	     "\"900\","
	     "\"author\":{\"id\":\"900\",\"username\":\"Bridged\"}}",
	     false, TR_E_NOTFOUND, NULL},
	    {"{\"id\":\"13\",\"channel_id\":\"5\",\"type\":7,\"content\":\"\","
	     "\"author\":{\"id\":\"2\",\"username\":\"alice\"}}",
	     false, TR_E_NOTFOUND, NULL},
	    {"{\"id\":\"10\",\"channel_id\":\"5\",\"type\":0,\"content\":\"new\","
	     "\"edited_timestamp\":\"2026-01-01T00:00:00+00:00\","
	     "\"author\":{\"id\":\"2\",\"username\":\"alice\"}}",
	     true, TR_OK, "dc:edit:10:2026-01-01T00:00:00+00:00"},
	    {"{\"id\":\"10\",\"channel_id\":\"5\",\"embeds\":[]}", true, TR_E_NOTFOUND, NULL},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		json_t *j = json_loads(t[i].json, 0, NULL);
		assert_non_null(j);
		struct tr_event ev;
		assert_int_equal(dc_map_message(j, t[i].update, &ctx, &ev), t[i].rc);
		if (t[i].rc == TR_OK) {
			assert_string_equal(ev.id, t[i].id);
			assert_string_equal(ev.channel, "5");
			assert_string_equal(ev.author.id, "2");
			tr_event_cleanup(&ev);
		}
		json_decref(j);
	}
	/* Stickers cross as their names (the issue: "stickers as names"). */
	json_t *j =
	    json_loads("{\"id\":\"20\",\"channel_id\":\"5\",\"type\":0,\"content\":"
	               "\"look\",\"sticker_items\":[{\"id\":\"7\",\"name\":\"Wave\","
	               "\"format_type\":1}],\"author\":{\"id\":\"2\",\"username\":\"alice\"}}",
	               0, NULL);
	struct tr_event ev;
	assert_int_equal(dc_map_message(j, false, &ctx, &ev), TR_OK);
	assert_non_null(strstr(ev.text, "look"));
	assert_non_null(strstr(ev.text, "[sticker: Wave]"));
	tr_event_cleanup(&ev);
	json_decref(j);
}

static void test_username(void **s)
{
	(void)s;
	static const struct {
		const char *display, *want;
	} t[] = {
	    {"Alice Smith", "Alice Smith"},
	    {"a@b#c:d", "abcd"},
	    {"everyone", "everyone (bridge)"},
	    {"@@@", "someone (bridge)"},
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct tr_author a = {.id = "x", .display = (char *)t[i].display};
		char *u = dc_username(&a);
		assert_string_equal(u, t[i].want);
		free(u);
	}
	struct tr_author d = {.id = "x", .display = "my discord"};
	char *u = dc_username(&d);
	assert_null(strstr(u, "discord"));
	free(u);
}

static void test_rate_limit(void **s)
{
	(void)s;
	struct dc_rl rl;
	dc_rl_init(&rl);
	const char *r = "POST /webhooks/{id}/{token}";
	assert_int_equal(dc_rl_wait(&rl, r, "9", 1000), 0);
	dc_rl_update(&rl, r, "9", "abc", "1", "2.5", 1000);
	assert_int_equal(dc_rl_wait(&rl, r, "9", 1000), 0);
	dc_rl_update(&rl, r, "9", "abc", "0", "2.5", 1100);
	assert_int_equal(dc_rl_wait(&rl, r, "9", 1100), 2500);
	assert_int_equal(dc_rl_wait(&rl, r, "8", 1100), 0); /* another major parameter */
	assert_int_equal(dc_rl_wait(&rl, r, "9", 3600), 0); /* reset passed */
	assert_int_equal(dc_rl_limited(&rl, r, "8", 0.75, false, 4000), 750);
	assert_int_equal(dc_rl_wait(&rl, r, "8", 4000), 750);
	assert_int_equal(dc_rl_limited(&rl, "GET /x", "", 2.0, true, 5000), 2000);
	assert_int_equal(dc_rl_wait(&rl, r, "9", 5500), 1500); /* global blocks every route */
	dc_rl_cleanup(&rl);
}

static void test_gateway_bits(void **s)
{
	(void)s;
	char *u = dc_gateway_url("wss://gateway.discord.gg");
	assert_string_equal(u, "wss://gateway.discord.gg/?v=10&encoding=json");
	free(u);
	u = dc_gateway_url("ws://127.0.0.1:5/resume-gateway");
	assert_string_equal(u, "ws://127.0.0.1:5/resume-gateway?v=10&encoding=json");
	free(u);
	assert_int_equal(dc_first_heartbeat_ms(40000, 0), 0);
	assert_true(dc_first_heartbeat_ms(40000, UINT32_MAX) < 40000);
	assert_int_equal(dc_first_heartbeat_ms(40000, 1u << 31), 20000);
	assert_true(dc_snowflake_cmp("99", "100") < 0);
	assert_true(dc_snowflake_cmp("200", "100") > 0);
	bool fatal = false;
	assert_non_null(strstr(dc_close_words(4014, &fatal), "Message Content Intent"));
	assert_true(fatal);
	dc_close_words(4000, &fatal);
	assert_false(fatal);
	assert_int_equal(DC_INTENTS, 34305);
}

static void test_upload_parts(void **state)
{
	(void)state;
	static const struct {
		const char *name, *url, *want;
	} names[] = {
	    {"cat.png", "https://x/y.png", "cat.png"},
	    {NULL, "https://x/a/b/photo.jpg?size=2", "photo.jpg"},
	    {"blob \"1\".bin", NULL, "blob _1_.bin"},
	    {"../etc\\passwd\r\n", NULL, ".._etc_passwd__"},
	    {NULL, NULL, "file"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *n = dc_upload_name(names[i].name, names[i].url);
		assert_string_equal(n, names[i].want);
		free(n);
	}
	json_t *payload = json_pack("{s:s}", "content", "hi");
	struct dc_upload up = {.name = "a.txt", .mime = "text/plain", .data = "DATA", .len = 4};
	struct tr_buf out;
	tr_buf_init(&out, 1 << 16);
	assert_int_equal(dc_multipart(payload, &up, 1, "B0UND", &out), TR_OK);
	const char *m = tr_buf_str(&out);
	assert_non_null(
	    strstr(m, "--B0UND\r\nContent-Disposition: form-data; name=\"payload_json\""));
	assert_non_null(strstr(m, "\"attachments\":[{\"id\":0,\"filename\":\"a.txt\"}]"));
	assert_non_null(
	    strstr(m, "name=\"files[0]\"; filename=\"a.txt\"\r\nContent-Type: text/plain"));
	assert_non_null(strstr(m, "\r\n\r\nDATA\r\n--B0UND--"));
	/* A boundary that occurs inside a file must be refused, so the caller picks another. */
	struct dc_upload bad = {.name = "b", .mime = "x/y", .data = "--B0UND", .len = 7};
	tr_buf_reset(&out);
	assert_int_equal(dc_multipart(payload, &bad, 1, "B0UND", &out), TR_E_INVAL);
	tr_buf_cleanup(&out);
	json_decref(payload);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render),        cmocka_unit_test(test_role_mention_inert),
	    cmocka_unit_test(test_to_commonmark), cmocka_unit_test(test_map_message),
	    cmocka_unit_test(test_username),      cmocka_unit_test(test_rate_limit),
	    cmocka_unit_test(test_gateway_bits),  cmocka_unit_test(test_upload_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
