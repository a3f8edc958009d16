/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* CommonMark -> the org.matrix.custom.html subset (client-server spec, "m.room.message msgtypes":
 * only the allowed tags and attributes). The document is parsed with cmark and its tree walked, so
 * raw HTML in the input never passes through: it is escaped and shown as text. Pure functions. */
#ifndef TRESTLE_COMMON_FORMAT_HTML_H
#define TRESTLE_COMMON_FORMAT_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include "err.h"

/* Renders md (len bytes of UTF-8) to HTML in *out (newly allocated). Mass mentions are
 * neutralised first (tr_mentions_neutralise). A document of one paragraph has no <p> wrapper, as
 * Matrix clients send it. Links keep only http, https, ftp, mailto and magnet targets; images
 * only mxc:// sources (others become links). *plain_only is set when the HTML says nothing the
 * text does not (no markup at all), so the caller may omit formatted_body. TR_OK or
 * TR_E_INVAL (bad UTF-8, NULL). */
int tr_format_html(const char *md, size_t len, char **out, bool *plain_only) TR_MUST_CHECK;

/* Escapes &, <, >, " and ' for HTML text or attribute values; newly allocated. */
char *tr_html_escape(const char *s, size_t len);

#endif
