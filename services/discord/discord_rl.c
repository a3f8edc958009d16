/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Discord's rate limits as data: each route maps to the bucket its X-RateLimit-Bucket header
 * names, a bucket is counted per major parameter (channel, webhook, guild), and a 429 blocks its
 * bucket (or, when global, every request) for retry_after. Pure: the caller passes the time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "discord.h"

void dc_rl_init(struct dc_rl *rl)
{
	memset(rl, 0, sizeof(*rl));
	tr_map_init(&rl->route_bucket);
	tr_map_init(&rl->buckets);
}

void dc_rl_cleanup(struct dc_rl *rl)
{
	const char *k;
	size_t kl;
	void *v;
	for (size_t i = 0; tr_map_next(&rl->route_bucket, &i, &k, &kl, &v);)
		free(v);
	for (size_t i = 0; tr_map_next(&rl->buckets, &i, &k, &kl, &v);)
		free(v);
	tr_map_cleanup(&rl->route_bucket);
	tr_map_cleanup(&rl->buckets);
}

/* The bucket's key: the hash the route is known to share, else the route itself. */
static char *dc_rl_key(const struct dc_rl *rl, const char *route, const char *major)
{
	const char *hash = tr_map_get(&rl->route_bucket, route, strlen(route));
	return tr_xasprintf("%s|%s", hash ? hash : route, major ? major : "");
}

int64_t dc_rl_wait(const struct dc_rl *rl, const char *route, const char *major, int64_t now)
{
	int64_t wait = rl->global_until > now ? rl->global_until - now : 0;
	char *key = dc_rl_key(rl, route, major);
	const struct dc_bucket *b = tr_map_get(&rl->buckets, key, strlen(key));
	free(key);
	if (b && b->remaining == 0 && b->reset_at > now && b->reset_at - now > wait)
		wait = b->reset_at - now;
	return wait;
}

static struct dc_bucket *dc_rl_bucket(struct dc_rl *rl, const char *route, const char *major)
{
	char *key = dc_rl_key(rl, route, major);
	struct dc_bucket *b = tr_map_get(&rl->buckets, key, strlen(key));
	if (!b) {
		if (rl->buckets.len >= DC_RL_MAX_BUCKETS) {
			/* Bounded: forget everything (only costs a possible 429 later). */
			const char *k;
			size_t kl;
			void *v;
			for (size_t i = 0; tr_map_next(&rl->buckets, &i, &k, &kl, &v);)
				free(v);
			tr_map_cleanup(&rl->buckets);
			tr_map_init(&rl->buckets);
		}
		b = tr_xcalloc(1, sizeof(*b));
		b->remaining = -1;
		tr_map_put(&rl->buckets, key, strlen(key), b);
	}
	free(key);
	return b;
}

static bool dc_rl_num(const char *s, double *out)
{
	if (!s || !*s)
		return false;
	char *end = NULL;
	double v = strtod(s, &end);
	if (end == s || v < 0 || v > 86400.0 * 365)
		return false;
	*out = v;
	return true;
}

void dc_rl_update(struct dc_rl *rl, const char *route, const char *major, const char *bucket,
                  const char *remaining, const char *reset_after, int64_t now)
{
	if (bucket && *bucket && strlen(bucket) < 128) {
		char *old = tr_map_get(&rl->route_bucket, route, strlen(route));
		if (!old || strcmp(old, bucket) != 0) {
			if (rl->route_bucket.len >= DC_RL_MAX_BUCKETS && !old)
				return;
			free(tr_map_put(&rl->route_bucket, route, strlen(route),
			                tr_xstrdup(bucket)));
		}
	}
	double rem, after;
	if (!dc_rl_num(remaining, &rem) || !dc_rl_num(reset_after, &after))
		return;
	struct dc_bucket *b = dc_rl_bucket(rl, route, major);
	b->remaining = (int64_t)rem;
	b->reset_at = now + (int64_t)(after * 1000.0 + 0.999);
}

int64_t dc_rl_limited(struct dc_rl *rl, const char *route, const char *major, double retry_after,
                      bool global, int64_t now)
{
	if (!(retry_after >= 0) || retry_after > 3600)
		retry_after = retry_after > 3600 ? 3600 : 1;
	int64_t ms = (int64_t)(retry_after * 1000.0 + 0.999);
	if (global) {
		if (now + ms > rl->global_until)
			rl->global_until = now + ms;
	} else {
		struct dc_bucket *b = dc_rl_bucket(rl, route, major);
		b->remaining = 0;
		if (now + ms > b->reset_at)
			b->reset_at = now + ms;
	}
	return ms;
}
