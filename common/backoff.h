/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Exponential backoff with jitter. Policies are const data (as lws's lws_retry_bo_t). */
#ifndef TRESTLE_COMMON_BACKOFF_H
#define TRESTLE_COMMON_BACKOFF_H

#include <stdint.h>

struct tr_backoff_policy {
	uint32_t base_ms;    /* first delay */
	uint32_t max_ms;     /* delays never exceed it */
	uint32_t jitter_pct; /* 0-100: how much of each delay is randomised away */
};

struct tr_backoff {
	const struct tr_backoff_policy *policy;
	unsigned attempt;
};

/* Pure: the delay for attempt n (0-based) given a uniform random 32-bit value. It is
 * min(max, base * 2^n) minus up to jitter_pct percent of it. */
uint32_t tr_backoff_delay(const struct tr_backoff_policy *p, unsigned attempt, uint32_t rnd);

void tr_backoff_init(struct tr_backoff *b, const struct tr_backoff_policy *p);
/* The next delay, with randomness from the process's PRNG; advances the attempt count. */
uint32_t tr_backoff_next(struct tr_backoff *b);
/* After a success: the next failure starts from base again. */
void tr_backoff_reset(struct tr_backoff *b);

/* Connections to the broker, Redis and networks: 0.5 s doubling to 30 s, 30% jitter. */
extern const struct tr_backoff_policy tr_backoff_connect;

/* Seeds the PRNG once per process from time and pid; called by the service mains. */
void tr_random_seed(void);
uint32_t tr_random(void);

#endif
