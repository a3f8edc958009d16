/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Backoff arithmetic and the process PRNG (xorshift: jitter needs spread, not secrecy). */
#include <time.h>
#include <unistd.h>
#include "backoff.h"

const struct tr_backoff_policy tr_backoff_connect = {
    .base_ms = 500, .max_ms = 30000, .jitter_pct = 30};

static uint64_t tr_rng_state = 0x9E3779B97F4A7C15ull;

void tr_random_seed(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	tr_rng_state ^=
	    ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16);
	if (!tr_rng_state)
		tr_rng_state = 1;
}

uint32_t tr_random(void)
{
	uint64_t x = tr_rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	tr_rng_state = x;
	return (uint32_t)(x >> 32);
}

uint32_t tr_backoff_delay(const struct tr_backoff_policy *p, unsigned attempt, uint32_t rnd)
{
	uint64_t d = p->base_ms;
	for (unsigned i = 0; i < attempt && d && d < p->max_ms; i++)
		d *= 2;
	if (d > p->max_ms)
		d = p->max_ms;
	uint32_t pct = p->jitter_pct > 100 ? 100 : p->jitter_pct;
	uint64_t span = d * pct / 100;
	uint64_t cut = span * rnd / UINT32_MAX;
	return (uint32_t)(d - cut);
}

void tr_backoff_init(struct tr_backoff *b, const struct tr_backoff_policy *p)
{
	b->policy = p;
	b->attempt = 0;
}

uint32_t tr_backoff_next(struct tr_backoff *b)
{
	uint32_t d = tr_backoff_delay(b->policy, b->attempt, tr_random());
	if (b->attempt < 64)
		b->attempt++;
	return d;
}

void tr_backoff_reset(struct tr_backoff *b)
{
	b->attempt = 0;
}
