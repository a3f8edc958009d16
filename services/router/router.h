/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* trestle-router internals, private to services/router/: the in-memory routing table built
 * from the rooms, the journal, and the routing pipeline. */
#ifndef TRESTLE_ROUTER_ROUTER_H
#define TRESTLE_ROUTER_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "err.h"
#include "map.h"
#include "rooms.h"

/* ---- table.c: who receives what ---------------------------------------------------------- */

/* Compact on purpose (10,000 rooms in a few MiB): strings live in one arena, destinations are
 * indices, and the endpoint index is a flat open-addressing table of uint32. */
struct rt_origin {
	const char *connector, *channel;
	const char *ep; /* endpoint key, see rt_endpoint_key */
	uint32_t first; /* its destinations: t->dests[first .. first + n_dests) */
	uint32_t n_dests;
	bool can_send; /* in some room with mode inout or in */
};

struct rt_dest {
	uint32_t origin; /* the destination endpoint, an index into t->origins */
	uint32_t room;   /* first room shared with the origin, an index into t->room_names */
};

struct rt_arena;

struct rt_table {
	int refs;
	struct rt_arena *arena;
	struct rt_origin *origins;
	uint32_t n_origins;
	struct rt_dest *dests;
	uint32_t n_dests;
	const char **room_names;
	uint32_t n_rooms;
	uint32_t *slots; /* origin index + 1, 0 = empty */
	uint32_t n_slots;
};

/* "<connector>:<byte length of channel>:<channel>": self-delimiting, so "<ep>:<msgid>" is too.
 * Newly allocated. */
char *rt_endpoint_key(const char *connector, const char *channel);
/* Builds the table from rooms (borrowed: the table keeps copies of what it needs). refs
 * starts at 1. */
struct rt_table *rt_table_new(const struct tr_rooms *rooms);
/* NULL when the endpoint is in no room. Borrowed. */
const struct rt_origin *rt_table_lookup(const struct rt_table *t, const char *connector,
                                        const char *channel);
static inline const struct rt_origin *rt_dest_origin(const struct rt_table *t,
                                                     const struct rt_dest *d)
{
	return &t->origins[d->origin];
}
static inline const char *rt_dest_room(const struct rt_table *t, const struct rt_dest *d)
{
	return t->room_names[d->room];
}
void rt_table_ref(struct rt_table *t);
void rt_table_unref(struct rt_table *t);

/* ---- journal.c ---------------------------------------------------------------------------- */

struct journal;
/* A record that was not done before the last stop; payload borrowed for the call. */
typedef void journal_replay_fn(void *arg, uint64_t seq, char kind, const char *token,
                               const char *connector, const char *payload, size_t len);
/* Opens (creating) the journal in dir and calls fn for every record not done, oldest first.
 * NULL with err filled when the directory cannot be used. */
struct journal *journal_open(const char *dir, journal_replay_fn *fn, void *arg,
                             char err[TR_ERR_LEN]);
int journal_append(struct journal *j, char kind, const char *token, const char *connector,
                   const void *payload, size_t len, uint64_t *seq) TR_MUST_CHECK;
void journal_done(struct journal *j, uint64_t seq);
void journal_close(struct journal *j);

/* ---- route.c / main.c --------------------------------------------------------------------- */

struct router_config {
	char *mqtt_url, *mqtt_ca_file, *redis_url, *prefix, *rooms_path, *state_dir, *metrics_addr,
	    *client_id;
	char **connectors; /* TRESTLE_ROUTER_CONNECTORS: this router's partition; none = all */
	size_t n_connectors;
	long retention_days;
	long ack_wait_ms;
};

/* Runs the router until SIGTERM/SIGINT. Returns the process exit code. */
int router_run(const struct router_config *cfg);

#endif
