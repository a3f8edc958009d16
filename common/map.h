/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A string-keyed hash map (open addressing, linear probing). Keys are copied; values are
 * borrowed void pointers the caller owns. */
#ifndef TRESTLE_COMMON_MAP_H
#define TRESTLE_COMMON_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct tr_map_slot {
	char *key; /* NULL: empty */
	size_t klen;
	void *val;
	bool tomb;
};

struct tr_map {
	struct tr_map_slot *slots;
	size_t cap, len, used;
};

void tr_map_init(struct tr_map *m);
/* Frees keys and slots, not values. */
void tr_map_cleanup(struct tr_map *m);
void *tr_map_get(const struct tr_map *m, const char *key, size_t klen);
/* Inserts or replaces; returns the value replaced, or NULL. */
void *tr_map_put(struct tr_map *m, const char *key, size_t klen, void *val);
/* Removes; returns the value removed, or NULL. */
void *tr_map_del(struct tr_map *m, const char *key, size_t klen);
/* Iteration: for (size_t i = 0; tr_map_next(m, &i, &k, &kl, &v);) */
bool tr_map_next(const struct tr_map *m, size_t *iter, const char **key, size_t *klen, void **val);

#endif
