/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The routing table: for every endpoint, the destinations its events fan out to (DESIGN §4:
 * every other endpoint of every room holding it, modes respected, one copy per destination). */
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "router.h"

char *rt_endpoint_key(const char *connector, const char *channel)
{
	return tr_xasprintf("%s:%zu:%s", connector, strlen(channel), channel);
}

static void rt_origin_add(struct rt_origin *o, const struct tr_endpoint *d, const char *room)
{
	char *ep = rt_endpoint_key(d->connector, d->channel);
	if (strcmp(ep, o->ep) == 0) {
		free(ep);
		return;
	}
	for (size_t i = 0; i < o->n_dests; i++) {
		if (strcmp(o->dests[i].ep, ep) == 0) {
			free(ep);
			return;
		}
	}
	o->dests = tr_xrealloc(o->dests, (o->n_dests + 1) * sizeof(*o->dests));
	o->dests[o->n_dests++] = (struct rt_dest){
		.connector = d->connector, .channel = d->channel, .room = room, .ep = ep};
}

struct rt_table *rt_table_new(struct tr_rooms *rooms)
{
	struct rt_table *t = tr_xcalloc(1, sizeof(*t));
	t->refs = 1;
	t->rooms = *rooms;
	memset(rooms, 0, sizeof(*rooms));
	tr_map_init(&t->by_ep);
	for (size_t r = 0; r < t->rooms.n_rooms; r++) {
		const struct tr_room *room = &t->rooms.rooms[r];
		for (size_t e = 0; e < room->n_eps; e++) {
			const struct tr_endpoint *src = &room->eps[e];
			char *ep = rt_endpoint_key(src->connector, src->channel);
			struct rt_origin *o = tr_map_get(&t->by_ep, ep, strlen(ep));
			if (!o) {
				o = tr_xcalloc(1, sizeof(*o));
				o->ep = ep;
				tr_map_put(&t->by_ep, ep, strlen(ep), o);
				t->n_endpoints++;
			} else {
				free(ep);
			}
			if (src->mode == TR_MODE_OUT)
				continue;
			o->can_send = true;
			for (size_t d = 0; d < room->n_eps; d++)
				if (d != e && room->eps[d].mode != TR_MODE_IN)
					rt_origin_add(o, &room->eps[d], room->name);
		}
	}
	return t;
}

const struct rt_origin *rt_table_lookup(const struct rt_table *t, const char *connector,
					const char *channel)
{
	char *ep = rt_endpoint_key(connector, channel);
	const struct rt_origin *o = tr_map_get(&t->by_ep, ep, strlen(ep));
	free(ep);
	return o;
}

void rt_table_ref(struct rt_table *t)
{
	t->refs++;
}

void rt_table_unref(struct rt_table *t)
{
	if (!t || --t->refs > 0)
		return;
	size_t it = 0;
	void *v;
	while (tr_map_next(&t->by_ep, &it, NULL, NULL, &v)) {
		struct rt_origin *o = v;
		for (size_t i = 0; i < o->n_dests; i++)
			free(o->dests[i].ep);
		free(o->dests);
		free(o->ep);
		free(o);
	}
	tr_map_cleanup(&t->by_ep);
	tr_rooms_cleanup(&t->rooms);
	free(t);
}
