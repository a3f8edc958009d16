/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Slack mrkdwn <-> CommonMark (../shared/specs/NETWORKS.md §1 d). Outbound text has exactly &, <
 * and > escaped, so no <!channel>, <!here>, <!everyone> or <!subteam^…> can come from bridged
 * text; inbound <@U…>, <#C…|name>, <!…>, <url|text> become readable CommonMark through a name
 * resolver. Pure functions; results are newly allocated. */
#ifndef TRESTLE_COMMON_FORMAT_MRKDWN_H
#define TRESTLE_COMMON_FORMAT_MRKDWN_H

#include <stddef.h>
#include "err.h"

/* Returns the readable name of a Slack id ("U…"/"W…" users, "C…"/"G…" channels, "S…" user
 * groups) without its sigil, borrowed until the next call, or NULL when unknown. */
typedef const char *tr_mrkdwn_name_fn(void *arg, const char *id);

/* CommonMark -> mrkdwn: *bold*, _italic_, ~strike~, `code`, ``` blocks, > quotes, <url|text>
 * links, lists with bullets; &, < and > escaped everywhere; plain @channel/@here made inert too.
 * TR_OK or TR_E_INVAL (bad UTF-8). */
int tr_mrkdwn_from_commonmark(const char *md, size_t len, char **out) TR_MUST_CHECK;

/* mrkdwn (as Slack sends it, entities included) -> CommonMark. Mentions become "@Name" (the
 * resolver's name, else the label Slack sent, else the id), channels "#name", specials
 * "@here"/"@channel"/"@everyone" as plain text, links [text](url). Characters CommonMark would
 * read as markup are backslash-escaped. resolve may be NULL. TR_OK or TR_E_INVAL. */
int tr_mrkdwn_to_commonmark(const char *text, size_t len, tr_mrkdwn_name_fn *resolve, void *arg,
                            char **out) TR_MUST_CHECK;

#endif
