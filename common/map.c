/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* FNV-1a hashed open-addressing map; grows at 70% load counting tombstones. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "map.h"

static uint64_t tr_map_hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)k[i];
		h *= 1099511628211ull;
	}
	return h;
}

void tr_map_init(struct tr_map *m)
{
	memset(m, 0, sizeof(*m));
}

void tr_map_cleanup(struct tr_map *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

static struct tr_map_slot *tr_map_find(const struct tr_map *m, const char *key, size_t klen)
{
	if (!m->cap)
		return NULL;
	size_t i = (size_t)tr_map_hash(key, klen) & (m->cap - 1);
	for (;;) {
		struct tr_map_slot *s = &m->slots[i];
		if (!s->key && !s->tomb)
			return NULL;
		if (s->key && s->klen == klen && memcmp(s->key, key, klen) == 0)
			return s;
		i = (i + 1) & (m->cap - 1);
	}
}

static void tr_map_grow(struct tr_map *m)
{
	struct tr_map old = *m;
	size_t cap = old.cap ? old.cap * 2 : 16;
	if (old.len * 2 < old.cap)
		cap = old.cap; /* mostly tombstones: rehash at the same size */
	m->slots = tr_xcalloc(cap, sizeof(*m->slots));
	m->cap = cap;
	m->len = m->used = 0;
	for (size_t i = 0; i < old.cap; i++) {
		struct tr_map_slot *s = &old.slots[i];
		if (!s->key)
			continue;
		size_t j = (size_t)tr_map_hash(s->key, s->klen) & (cap - 1);
		while (m->slots[j].key)
			j = (j + 1) & (cap - 1);
		m->slots[j] = *s;
		m->slots[j].tomb = false;
		m->len++;
		m->used++;
	}
	free(old.slots);
}

void *tr_map_get(const struct tr_map *m, const char *key, size_t klen)
{
	struct tr_map_slot *s = tr_map_find(m, key, klen);
	return s ? s->val : NULL;
}

void *tr_map_put(struct tr_map *m, const char *key, size_t klen, void *val)
{
	struct tr_map_slot *s = tr_map_find(m, key, klen);
	if (s) {
		void *old = s->val;
		s->val = val;
		return old;
	}
	if ((m->used + 1) * 10 >= m->cap * 7)
		tr_map_grow(m);
	size_t i = (size_t)tr_map_hash(key, klen) & (m->cap - 1);
	while (m->slots[i].key)
		i = (i + 1) & (m->cap - 1);
	s = &m->slots[i];
	if (!s->tomb)
		m->used++;
	s->key = tr_xstrndup(key, klen);
	s->klen = klen;
	s->val = val;
	s->tomb = false;
	m->len++;
	return NULL;
}

void *tr_map_del(struct tr_map *m, const char *key, size_t klen)
{
	struct tr_map_slot *s = tr_map_find(m, key, klen);
	if (!s)
		return NULL;
	void *old = s->val;
	free(s->key);
	s->key = NULL;
	s->val = NULL;
	s->tomb = true;
	m->len--;
	return old;
}

bool tr_map_next(const struct tr_map *m, size_t *iter, const char **key, size_t *klen, void **val)
{
	while (*iter < m->cap) {
		struct tr_map_slot *s = &m->slots[(*iter)++];
		if (s->key) {
			if (key)
				*key = s->key;
			if (klen)
				*klen = s->klen;
			if (val)
				*val = s->val;
			return true;
		}
	}
	return false;
}
