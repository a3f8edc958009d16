/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Discord's markdown dialect: CommonMark rendered to what Discord shows (every character it would
 * read as markup or as a mention token escaped with a backslash, mass mentions neutralised), and
 * Discord's mention/emoji tokens turned back into readable text for the bus. */
#ifndef TRESTLE_COMMON_FORMAT_DISCORD_H
#define TRESTLE_COMMON_FORMAT_DISCORD_H

#include <stddef.h>
#include "err.h"

/* CommonMark -> Discord markdown in *out (newly allocated). Text is escaped so that it never
 * formats, links or mentions by accident; bare http(s) URLs are kept as they are so Discord
 * still links them. TR_OK or TR_E_INVAL (bad UTF-8, NULL). */
int tr_format_discord(const char *md, size_t len, char **out) TR_MUST_CHECK;

/* Escapes every ASCII punctuation character Discord's markdown reads (and '<' of mention tokens)
 * with a backslash, keeping http(s) URLs whole; mass mentions neutralised. Newly allocated. */
char *tr_discord_escape(const char *s, size_t len);

/* What a token names: kind is '@' (user), '&' (role), '#' (channel). Returns a borrowed
 * display name or NULL when unknown. */
typedef const char *tr_discord_name_fn(void *arg, char kind, const char *id);

/* Discord message content -> CommonMark for the bus: <@id>/<@!id> become "@name", <@&id>
 * "@role", <#id> "#channel", <:name:id>/<a:name:id> ":name:"; the rest is kept (Discord's
 * markdown is close to CommonMark). fn may be NULL (ids are shown). Newly allocated in *out. */
int tr_discord_to_commonmark(const char *s, size_t len, tr_discord_name_fn *fn, void *arg,
                             char **out) TR_MUST_CHECK;

#endif
