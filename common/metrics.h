/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A small Prometheus registry: counters, gauges and histograms, rendered in the text
 * exposition format (version 0.0.4). Single-threaded, like everything on the loop. */
#ifndef TRESTLE_COMMON_METRICS_H
#define TRESTLE_COMMON_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "err.h"

struct tr_metrics;
struct tr_metric; /* one series: a family name plus one label set */

struct tr_metrics *tr_metrics_new(void);
void tr_metrics_free(struct tr_metrics *m);

/* Finds or creates the series. name: [a-zA-Z_:][a-zA-Z0-9_:]*; labels: NULL or a rendered
 * label list such as `connector="irc",reason="bad_json"` (values escaped with
 * tr_metrics_label_escape). The family's help and type come from the first call. The
 * result is owned by the registry and lives as long as it. */
struct tr_metric *tr_metrics_counter(struct tr_metrics *m, const char *name, const char *help,
                                     const char *labels);
struct tr_metric *tr_metrics_gauge(struct tr_metrics *m, const char *name, const char *help,
                                   const char *labels);
/* bounds: ascending upper bounds (le), copied; +Inf is implied. */
struct tr_metric *tr_metrics_histogram(struct tr_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n_bounds);

void tr_metric_inc(struct tr_metric *c);
void tr_metric_add(struct tr_metric *c, double v);
void tr_metric_set(struct tr_metric *g, double v);
void tr_metric_observe(struct tr_metric *h, double v);
double tr_metric_value(const struct tr_metric *c);

/* Appends the whole registry in text format. TR_E_TOOBIG if out's maximum is reached. */
int tr_metrics_render(const struct tr_metrics *m, struct tr_buf *out) TR_MUST_CHECK;
/* Escapes a label value (backslash, double quote, newline), newly allocated. */
char *tr_metrics_label_escape(const char *v);

#endif
