/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Slack reaction short names <-> Unicode emoji for the common reactions. Names Slack does not
 * know as Unicode (custom emoji) travel as ":name:" and come back unchanged. */
#include <string.h>
#include "slack.h"

struct slack_emoji {
	const char *name;
	const char *utf8;
};

/* First entry of a code point wins when mapping Unicode -> name (aliases follow it). */
static const struct slack_emoji slack_emoji_table[] = {
    {"+1", "\U0001F44D"},
    {"thumbsup", "\U0001F44D"},
    {"-1", "\U0001F44E"},
    {"thumbsdown", "\U0001F44E"},
    {"heart", "\u2764\uFE0F"},
    {"joy", "\U0001F602"},
    {"smile", "\U0001F604"},
    {"smiley", "\U0001F603"},
    {"grinning", "\U0001F600"},
    {"slightly_smiling_face", "\U0001F642"},
    {"wink", "\U0001F609"},
    {"laughing", "\U0001F606"},
    {"rolling_on_the_floor_laughing", "\U0001F923"},
    {"heart_eyes", "\U0001F60D"},
    {"thinking_face", "\U0001F914"},
    {"cry", "\U0001F622"},
    {"sob", "\U0001F62D"},
    {"open_mouth", "\U0001F62E"},
    {"scream", "\U0001F631"},
    {"angry", "\U0001F620"},
    {"rage", "\U0001F621"},
    {"clap", "\U0001F44F"},
    {"pray", "\U0001F64F"},
    {"raised_hands", "\U0001F64C"},
    {"wave", "\U0001F44B"},
    {"ok_hand", "\U0001F44C"},
    {"muscle", "\U0001F4AA"},
    {"eyes", "\U0001F440"},
    {"fire", "\U0001F525"},
    {"tada", "\U0001F389"},
    {"rocket", "\U0001F680"},
    {"star", "\u2B50"},
    {"sparkles", "\u2728"},
    {"100", "\U0001F4AF"},
    {"white_check_mark", "\u2705"},
    {"heavy_check_mark", "\u2714\uFE0F"},
    {"x", "\u274C"},
    {"warning", "\u26A0\uFE0F"},
    {"question", "\u2753"},
    {"exclamation", "\u2757"},
    {"bulb", "\U0001F4A1"},
    {"memo", "\U0001F4DD"},
    {"point_up", "\u261D\uFE0F"},
    {"point_right", "\U0001F449"},
    {"raising_hand", "\U0001F64B"},
    {"see_no_evil", "\U0001F648"},
    {"upside_down_face", "\U0001F643"},
    {"sweat_smile", "\U0001F605"},
    {"blush", "\U0001F60A"},
    {"sunglasses", "\U0001F60E"},
    {"partying_face", "\U0001F973"},
    {"hugging_face", "\U0001F917"},
    {"coffee", "\u2615"},
    {"beers", "\U0001F37B"},
    {"seedling", "\U0001F331"},
    {"handshake", "\U0001F91D"},
    {"green_heart", "\U0001F49A"},
    {"blue_heart", "\U0001F499"},
    {"purple_heart", "\U0001F49C"},
    {"yellow_heart", "\U0001F49B"},
    {"broken_heart", "\U0001F494"},
    {"skull", "\U0001F480"},
    {"poop", "\U0001F4A9"},
};

/* A variation selector U+FE0F on either side is not significant. */
static size_t slack_emoji_core_len(const char *s)
{
	size_t n = strlen(s);
	if (n >= 3 && memcmp(s + n - 3, "\xEF\xB8\x8F", 3) == 0)
		n -= 3;
	return n;
}

const char *slack_emoji_to_unicode(const char *name)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(slack_emoji_table); i++)
		if (strcmp(slack_emoji_table[i].name, name) == 0)
			return slack_emoji_table[i].utf8;
	return NULL;
}

const char *slack_emoji_to_name(const char *utf8)
{
	size_t n = slack_emoji_core_len(utf8);
	for (size_t i = 0; i < TR_ARRAY_LEN(slack_emoji_table); i++) {
		const char *u = slack_emoji_table[i].utf8;
		if (slack_emoji_core_len(u) == n && memcmp(u, utf8, n) == 0)
			return slack_emoji_table[i].name;
	}
	return NULL;
}
