/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Message formatting shared by every connector: CommonMark (the bus's text format) is parsed
 * once with cmark and rendered per network dialect; each inbound dialect is converted back to
 * CommonMark; mass mentions are neutralised in one place; long text is split or truncated
 * without breaking UTF-8 or a formatting run. All functions are pure and allocate their
 * results (the caller frees); input must be valid UTF-8 (the bus guarantees it). */
#ifndef TRESTLE_COMMON_FORMAT_H
#define TRESTLE_COMMON_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

enum tr_dialect {
	TR_DIALECT_PLAIN = 0, /* no markup: emphasis markers dropped, links as "text (url)" */
	TR_DIALECT_IRC,       /* mIRC control codes: \x02 bold, \x1d italic, \x1e strike,
	                       * \x11 monospace, \x1f underline, \x0f reset */
	TR_DIALECT_XMPP,      /* XEP-0393 message styling: *bold* _italic_ ~strike~ `code`,
	                       * ``` blocks, > quotes */
	TR_DIALECT__COUNT
};

/* CommonMark -> dialect. Mass mentions are neutralised in the result. Lines are separated by
 * "\n". TR_OK or TR_E_INVAL (bad UTF-8). */
int tr_format_render(const char *md, size_t len, enum tr_dialect d, char **out) TR_MUST_CHECK;

/* Dialect -> CommonMark: the dialect's markup becomes CommonMark markup, and characters that
 * CommonMark would read as markup but the network meant literally are backslash-escaped.
 * IRC colour codes are dropped (their text kept). */
int tr_format_to_commonmark(const char *text, size_t len, enum tr_dialect d,
                            char **out) TR_MUST_CHECK;

/* Makes every mass mention inert for any network: @everyone, @here, @channel, @room, @all
 * (any case, at a word start) get U+2060 WORD JOINER after the '@'; Slack's <!channel>,
 * <!here>, <!everyone>, <!subteam^…> and Discord's <@&role> get it after the '<'. Newly
 * allocated. */
char *tr_mentions_neutralise(const char *s, size_t len);

/* Splits text into pieces of at most max_bytes each (max_bytes >= 16): at line breaks first,
 * then at the last space that fits, then at a code point boundary; never inside a UTF-8
 * sequence. For TR_DIALECT_IRC a formatting run cut by a split is closed at the end of its
 * piece and reopened at the start of the next. Empty lines are dropped; CR also ends a line
 * and NUL bytes are dropped, so no piece holds CR, LF or NUL. *pieces is a
 * NULL-terminated array of *n strings, freed with tr_format_pieces_free. */
int tr_format_split(const char *s, size_t len, size_t max_bytes, enum tr_dialect d, char ***pieces,
                    size_t *n) TR_MUST_CHECK;
void tr_format_pieces_free(char **pieces);
/* As tr_format_split, with a limit in code points too (max_chars >= 16, or 0 for none; an IRC
 * formatting code counts as one), for networks that count characters rather than bytes. */
int tr_format_split_limits(const char *s, size_t len, size_t max_bytes, size_t max_chars,
                           enum tr_dialect d, char ***pieces, size_t *n) TR_MUST_CHECK;

/* At most max_bytes and max_chars code points (0 = no limit); when cut, ends with "…" (counted
 * in the limits) and, for IRC, with formatting reset. Newly allocated. */
char *tr_format_truncate(const char *s, size_t len, size_t max_bytes, size_t max_chars,
                         enum tr_dialect d);

#endif
