/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The routing table: for every endpoint, the destinations its events fan out to (DESIGN §4:
 * every other endpoint of every room holding it, modes respected, one copy per destination).
 * Built once per (re)load into a compact form; see router.h. */
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "router.h"

#define RT_ARENA_BLOCK (64 * 1024)

struct rt_arena {
	struct rt_arena *next;
	size_t used, cap;
	char data[];
};

static const char *rt_arena_str(struct rt_arena **a, const char *s, size_t n)
{
	if (!*a || (*a)->cap - (*a)->used < n + 1) {
		size_t cap = n + 1 > RT_ARENA_BLOCK ? n + 1 : RT_ARENA_BLOCK;
		struct rt_arena *b = tr_xmalloc(sizeof(*b) + cap);
		b->next = *a;
		b->used = 0;
		b->cap = cap;
		*a = b;
	}
	char *p = (*a)->data + (*a)->used;
	memcpy(p, s, n);
	p[n] = '\0';
	(*a)->used += n + 1;
	return p;
}

static uint32_t rt_hash(const char *s, size_t n)
{
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

char *rt_endpoint_key(const char *connector, const char *channel)
{
	return tr_xasprintf("%s:%zu:%s", connector, strlen(channel), channel);
}

/* The slot holding key, or the empty slot where it would go. */
static uint32_t *rt_slot(const struct rt_table *t, const char *key, size_t n)
{
	uint32_t mask = t->n_slots - 1;
	for (uint32_t i = rt_hash(key, n) & mask;; i = (i + 1) & mask) {
		uint32_t *s = &t->slots[i];
		if (!*s)
			return s;
		const char *ep = t->origins[*s - 1].ep;
		if (strncmp(ep, key, n) == 0 && ep[n] == '\0')
			return s;
	}
}

static uint32_t rt_origin_of(struct rt_table *t, const struct tr_endpoint *e)
{
	char *key = rt_endpoint_key(e->connector, e->channel);
	size_t n = strlen(key);
	uint32_t *s = rt_slot(t, key, n);
	if (!*s) {
		struct rt_origin *o = &t->origins[t->n_origins];
		o->ep = rt_arena_str(&t->arena, key, n);
		/* The key holds both names; connector and channel point into it. */
		size_t cl = strlen(e->connector);
		o->connector = rt_arena_str(&t->arena, key, cl);
		o->channel = o->ep + n - strlen(e->channel);
		*s = ++t->n_origins;
	}
	free(key);
	return *s - 1;
}

struct rt_table *rt_table_new(const struct tr_rooms *rooms)
{
	struct rt_table *t = tr_xcalloc(1, sizeof(*t));
	t->refs = 1;
	size_t n_eps = 0, n_pairs = 0;
	for (size_t r = 0; r < rooms->n_rooms; r++) {
		n_eps += rooms->rooms[r].n_eps;
		n_pairs +=
		    rooms->rooms[r].n_eps * (rooms->rooms[r].n_eps ? rooms->rooms[r].n_eps - 1 : 0);
	}
	t->origins = tr_xcalloc(n_eps ? n_eps : 1, sizeof(*t->origins));
	t->n_slots = 16;
	while (t->n_slots < 2 * n_eps)
		t->n_slots *= 2;
	t->slots = tr_xcalloc(t->n_slots, sizeof(*t->slots));
	t->n_rooms = (uint32_t)rooms->n_rooms;
	t->room_names = tr_xcalloc(rooms->n_rooms ? rooms->n_rooms : 1, sizeof(char *));

	/* Pass 1: every endpoint gets an index; count each one's candidate destinations. */
	uint32_t **room_idx = tr_xcalloc(rooms->n_rooms ? rooms->n_rooms : 1, sizeof(uint32_t *));
	uint32_t *cand = tr_xcalloc(n_eps ? n_eps : 1, sizeof(uint32_t));
	for (size_t r = 0; r < rooms->n_rooms; r++) {
		const struct tr_room *room = &rooms->rooms[r];
		t->room_names[r] = rt_arena_str(&t->arena, room->name, strlen(room->name));
		room_idx[r] = tr_xcalloc(room->n_eps ? room->n_eps : 1, sizeof(uint32_t));
		for (size_t e = 0; e < room->n_eps; e++)
			room_idx[r][e] = rt_origin_of(t, &room->eps[e]);
		for (size_t e = 0; e < room->n_eps; e++)
			if (room->eps[e].mode != TR_MODE_OUT)
				cand[room_idx[r][e]] += (uint32_t)room->n_eps - 1;
	}
	uint32_t next = 0;
	for (uint32_t i = 0; i < t->n_origins; i++) {
		t->origins[i].first = next;
		next += cand[i];
	}
	t->dests = tr_xcalloc(n_pairs ? n_pairs : 1, sizeof(*t->dests));
	/* Pass 2: fill, one copy per destination across rooms. */
	for (size_t r = 0; r < rooms->n_rooms; r++) {
		const struct tr_room *room = &rooms->rooms[r];
		for (size_t e = 0; e < room->n_eps; e++) {
			if (room->eps[e].mode == TR_MODE_OUT)
				continue;
			struct rt_origin *o = &t->origins[room_idx[r][e]];
			o->can_send = true;
			for (size_t d = 0; d < room->n_eps; d++) {
				uint32_t di = room_idx[r][d];
				if (d == e || room->eps[d].mode == TR_MODE_IN ||
				    di == room_idx[r][e])
					continue;
				bool dup = false;
				for (uint32_t k = 0; k < o->n_dests && !dup; k++)
					dup = t->dests[o->first + k].origin == di;
				if (!dup)
					t->dests[o->first + o->n_dests++] =
					    (struct rt_dest){.origin = di, .room = (uint32_t)r};
			}
		}
		free(room_idx[r]);
	}
	t->n_dests = (uint32_t)n_pairs;
	free(room_idx);
	free(cand);
	return t;
}

const struct rt_origin *rt_table_lookup(const struct rt_table *t, const char *connector,
                                        const char *channel)
{
	char *key = rt_endpoint_key(connector, channel);
	uint32_t *s = rt_slot(t, key, strlen(key));
	free(key);
	return *s ? &t->origins[*s - 1] : NULL;
}

void rt_table_ref(struct rt_table *t)
{
	t->refs++;
}

void rt_table_unref(struct rt_table *t)
{
	if (!t || --t->refs > 0)
		return;
	while (t->arena) {
		struct rt_arena *a = t->arena;
		t->arena = a->next;
		free(a);
	}
	free(t->origins);
	free(t->dests);
	free(t->room_names);
	free(t->slots);
	free(t);
}
