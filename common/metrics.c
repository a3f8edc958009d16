/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* Prometheus registry and text exposition format 0.0.4. Families keep creation order, and so do
 * the series of a family, so that a scrape is stable and diffable. Misuse (a bad name, one
 * name used with two types, observing a counter) is a programmer error and aborts. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"
#include "map.h"
#include "metrics.h"

enum tr_metric_type { TR_METRIC_COUNTER = 0, TR_METRIC_GAUGE, TR_METRIC_HISTOGRAM };

static const char *const tr_metric_type_names[] = {"counter", "gauge", "histogram"};

struct tr_metric {
	struct tr_metric_family *fam;
	char *labels;      /* "" when none */
	double value;      /* counter, gauge */
	uint64_t *buckets; /* histogram: per bucket, not cumulative; n_bounds + 1 (+Inf) */
	uint64_t count;
	double sum;
};

struct tr_metric_family {
	char *name, *help;
	enum tr_metric_type type;
	double *bounds;
	size_t n_bounds;
	struct tr_metric **series;
	size_t n_series;
	struct tr_map by_labels;
};

struct tr_metrics {
	struct tr_metric_family **fams;
	size_t n_fams;
	struct tr_map by_name;
};

static void tr_metrics_misuse(const char *what, const char *name)
{
	fprintf(stderr, "trestle: metrics misuse: %s: %s\n", what, name ? name : "(null)");
	abort();
}

/* Arrays grow when their length reaches a power of two, so no capacity field is needed. */
static void *tr_metrics_grow(void *p, size_t n, size_t size)
{
	if (n == 0)
		return tr_xmalloc(size);
	if ((n & (n - 1)) == 0)
		return tr_xrealloc(p, 2 * n * size);
	return p;
}

struct tr_metrics *tr_metrics_new(void)
{
	struct tr_metrics *m = tr_xcalloc(1, sizeof(*m));
	tr_map_init(&m->by_name);
	return m;
}

void tr_metrics_free(struct tr_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_fams; i++) {
		struct tr_metric_family *f = m->fams[i];
		for (size_t j = 0; j < f->n_series; j++) {
			free(f->series[j]->labels);
			free(f->series[j]->buckets);
			free(f->series[j]);
		}
		free(f->series);
		tr_map_cleanup(&f->by_labels);
		free(f->bounds);
		free(f->name);
		free(f->help);
		free(f);
	}
	free(m->fams);
	tr_map_cleanup(&m->by_name);
	free(m);
}

static bool tr_metrics_name_valid(const char *s)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		          c == ':' || (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return false;
	}
	return true;
}

static struct tr_metric *tr_metrics_get(struct tr_metrics *m, const char *name, const char *help,
                                        const char *labels, enum tr_metric_type type,
                                        const double *bounds, size_t n_bounds)
{
	if (!tr_metrics_name_valid(name))
		tr_metrics_misuse("bad metric name", name);
	if (!labels)
		labels = "";
	struct tr_metric_family *f = tr_map_get(&m->by_name, name, strlen(name));
	if (!f) {
		f = tr_xcalloc(1, sizeof(*f));
		f->name = tr_xstrdup(name);
		f->help = tr_xstrdup(help ? help : "");
		f->type = type;
		tr_map_init(&f->by_labels);
		if (type == TR_METRIC_HISTOGRAM) {
			/* An explicit +Inf is implied anyway; bounds must rise strictly. */
			while (n_bounds && isinf(bounds[n_bounds - 1]) && bounds[n_bounds - 1] > 0)
				n_bounds--;
			for (size_t i = 0; i < n_bounds; i++)
				if (!isfinite(bounds[i]) || (i && bounds[i] <= bounds[i - 1]))
					tr_metrics_misuse("histogram bounds must rise", name);
			f->bounds = tr_xmalloc((n_bounds ? n_bounds : 1) * sizeof(*f->bounds));
			if (n_bounds)
				memcpy(f->bounds, bounds, n_bounds * sizeof(*bounds));
			f->n_bounds = n_bounds;
		}
		m->fams = tr_metrics_grow(m->fams, m->n_fams, sizeof(*m->fams));
		m->fams[m->n_fams++] = f;
		(void)tr_map_put(&m->by_name, f->name, strlen(f->name), f);
	} else if (f->type != type) {
		tr_metrics_misuse("one name used with two types", name);
	}
	struct tr_metric *s = tr_map_get(&f->by_labels, labels, strlen(labels));
	if (s)
		return s;
	s = tr_xcalloc(1, sizeof(*s));
	s->fam = f;
	s->labels = tr_xstrdup(labels);
	if (type == TR_METRIC_HISTOGRAM)
		s->buckets = tr_xcalloc(f->n_bounds + 1, sizeof(*s->buckets));
	f->series = tr_metrics_grow(f->series, f->n_series, sizeof(*f->series));
	f->series[f->n_series++] = s;
	(void)tr_map_put(&f->by_labels, s->labels, strlen(s->labels), s);
	return s;
}

struct tr_metric *tr_metrics_counter(struct tr_metrics *m, const char *name, const char *help,
                                     const char *labels)
{
	return tr_metrics_get(m, name, help, labels, TR_METRIC_COUNTER, NULL, 0);
}

struct tr_metric *tr_metrics_gauge(struct tr_metrics *m, const char *name, const char *help,
                                   const char *labels)
{
	return tr_metrics_get(m, name, help, labels, TR_METRIC_GAUGE, NULL, 0);
}

struct tr_metric *tr_metrics_histogram(struct tr_metrics *m, const char *name, const char *help,
                                       const char *labels, const double *bounds, size_t n_bounds)
{
	return tr_metrics_get(m, name, help, labels, TR_METRIC_HISTOGRAM, bounds, n_bounds);
}

void tr_metric_inc(struct tr_metric *c)
{
	tr_metric_add(c, 1);
}

void tr_metric_add(struct tr_metric *c, double v)
{
	if (c->fam->type == TR_METRIC_HISTOGRAM)
		tr_metrics_misuse("add on a histogram", c->fam->name);
	/* A counter only goes up: a negative step would look like a reset to Prometheus. */
	if (c->fam->type == TR_METRIC_COUNTER && !(v >= 0))
		return;
	c->value += v;
}

/* Allowed on counters too, for those that mirror a count kept elsewhere (bus reconnects). */
void tr_metric_set(struct tr_metric *g, double v)
{
	if (g->fam->type == TR_METRIC_HISTOGRAM)
		tr_metrics_misuse("set on a histogram", g->fam->name);
	g->value = v;
}

void tr_metric_observe(struct tr_metric *h, double v)
{
	if (h->fam->type != TR_METRIC_HISTOGRAM)
		tr_metrics_misuse("observe on a counter or gauge", h->fam->name);
	if (isnan(v))
		return;
	size_t i = 0;
	while (i < h->fam->n_bounds && v > h->fam->bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
}

/* A histogram's value is its number of observations. */
double tr_metric_value(const struct tr_metric *c)
{
	if (c->fam->type == TR_METRIC_HISTOGRAM)
		return (double)c->count;
	return c->value;
}

/* The shortest text that reads back as the same double, Prometheus spellings for the rest. */
static void tr_metrics_fmt(char out[32], double v)
{
	if (isnan(v)) {
		snprintf(out, 32, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(out, 32, "%s", v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(out, 32, "%.*g", prec, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

/* HELP text escapes backslash and newline (the format's rule for HELP lines). */
static int tr_metrics_help(struct tr_buf *out, const char *help)
{
	int rc = TR_OK;
	for (const char *p = help; *p && rc == TR_OK; p++) {
		if (*p == '\\')
			rc = tr_buf_append(out, "\\\\", 2);
		else if (*p == '\n')
			rc = tr_buf_append(out, "\\n", 2);
		else
			rc = tr_buf_append(out, p, 1);
	}
	return rc;
}

char *tr_metrics_label_escape(const char *v)
{
	size_t n = 0;
	for (const char *p = v; *p; p++)
		n += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
	char *s = tr_xmalloc(n + 1);
	size_t o = 0;
	for (const char *p = v; *p; p++) {
		if (*p == '\\' || *p == '"') {
			s[o++] = '\\';
			s[o++] = *p;
		} else if (*p == '\n') {
			s[o++] = '\\';
			s[o++] = 'n';
		} else {
			s[o++] = *p;
		}
	}
	s[o] = '\0';
	return s;
}

static int tr_metrics_render_histogram(const struct tr_metric *s, struct tr_buf *out)
{
	const struct tr_metric_family *f = s->fam;
	const char *sep = s->labels[0] ? "," : "";
	char num[32];
	uint64_t cum = 0;
	int rc = TR_OK;
	for (size_t i = 0; i <= f->n_bounds && rc == TR_OK; i++) {
		cum += s->buckets[i];
		if (i < f->n_bounds)
			tr_metrics_fmt(num, f->bounds[i]);
		else
			snprintf(num, sizeof(num), "+Inf");
		rc = tr_buf_printf(out, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, s->labels, sep,
		                   num, (unsigned long long)cum);
	}
	if (rc != TR_OK)
		return rc;
	tr_metrics_fmt(num, s->sum);
	if (s->labels[0])
		rc = tr_buf_printf(out, "%s_sum{%s} %s\n%s_count{%s} %llu\n", f->name, s->labels,
		                   num, f->name, s->labels, (unsigned long long)s->count);
	else
		rc = tr_buf_printf(out, "%s_sum %s\n%s_count %llu\n", f->name, num, f->name,
		                   (unsigned long long)s->count);
	return rc;
}

int tr_metrics_render(const struct tr_metrics *m, struct tr_buf *out)
{
	int rc = TR_OK;
	char num[32];
	for (size_t i = 0; i < m->n_fams; i++) {
		const struct tr_metric_family *f = m->fams[i];
		rc = tr_buf_printf(out, "# HELP %s ", f->name);
		if (rc == TR_OK)
			rc = tr_metrics_help(out, f->help);
		if (rc == TR_OK)
			rc = tr_buf_printf(out, "\n# TYPE %s %s\n", f->name,
			                   tr_metric_type_names[f->type]);
		for (size_t j = 0; j < f->n_series && rc == TR_OK; j++) {
			const struct tr_metric *s = f->series[j];
			if (f->type == TR_METRIC_HISTOGRAM) {
				rc = tr_metrics_render_histogram(s, out);
				continue;
			}
			tr_metrics_fmt(num, s->value);
			if (s->labels[0])
				rc = tr_buf_printf(out, "%s{%s} %s\n", f->name, s->labels, num);
			else
				rc = tr_buf_printf(out, "%s %s\n", f->name, num);
		}
		if (rc != TR_OK)
			return rc;
	}
	return rc;
}
