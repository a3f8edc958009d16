/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* UTF-8 validation and boundary-safe truncation. Strict: no overlongs, no surrogates, nothing
 * above U+10FFFF. Pure functions on (pointer, length); NUL bytes are ordinary bytes here. */
#ifndef TRESTLE_COMMON_UTF8_H
#define TRESTLE_COMMON_UTF8_H

#include <stdbool.h>
#include <stddef.h>

bool tr_utf8_valid(const char *s, size_t len);
/* Length in bytes of the next code point at s (1-4), or 0 if s does not start a valid one. */
size_t tr_utf8_seq_len(const char *s, size_t len);
/* Number of code points in valid UTF-8. */
size_t tr_utf8_count(const char *s, size_t len);
/* The largest byte length <= max_bytes that ends on a code point boundary of valid UTF-8 s. */
size_t tr_utf8_truncate(const char *s, size_t len, size_t max_bytes);
/* The byte length of the first max_chars code points of valid UTF-8 s. */
size_t tr_utf8_prefix_chars(const char *s, size_t len, size_t max_chars);

#endif
