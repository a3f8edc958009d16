/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The router's journal: every message taken from the broker is appended (one write(2), so a
 * SIGKILL cannot lose it) before libmosquitto sends the PUBACK, and marked done once all its
 * out events are acknowledged by the broker. At start, records not done are replayed. Files
 * are segments router-journal.<n>; a segment whose records are all done is deleted.
 * Record format:  "E <seq> <kind> <token> <connector> <len>\n<payload>\n"  and  "D <seq>\n". */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "buf.h"
#include "event.h"
#include "log.h"
#include "map.h"
#include "router.h"

#define JOURNAL_SEGMENT_MAX (8u * 1024 * 1024)
#define JOURNAL_PREFIX      "router-journal."

struct journal_segment {
	unsigned num;
	uint64_t first_seq, last_seq;
	size_t live;
	struct journal_segment *next;
};

struct journal {
	char *dir;
	int fd;
	size_t size;
	uint64_t next_seq;
	struct journal_segment *segs; /* oldest first; the last is active */
	struct journal_segment *active;
};

static char *journal_path(const struct journal *j, unsigned num)
{
	return tr_xasprintf("%s/" JOURNAL_PREFIX "%u", j->dir, num);
}

static int journal_write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return TR_E_IO;
		p += w;
		n -= (size_t)w;
	}
	return TR_OK;
}

static int journal_new_segment(struct journal *j, unsigned num, char err[TR_ERR_LEN])
{
	char *path = journal_path(j, num);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, TR_ERR_LEN, "cannot create journal %.150s: %.60s", path,
		         strerror(errno));
		free(path);
		return TR_E_IO;
	}
	free(path);
	if (j->fd >= 0)
		close(j->fd);
	j->fd = fd;
	j->size = 0;
	struct journal_segment *s = tr_xcalloc(1, sizeof(*s));
	s->num = num;
	s->first_seq = j->next_seq;
	s->last_seq = j->next_seq;
	struct journal_segment **pp = &j->segs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = s;
	j->active = s;
	return TR_OK;
}

static void journal_drop_segment(struct journal *j, struct journal_segment *s)
{
	char *path = journal_path(j, s->num);
	if (unlink(path) != 0 && errno != ENOENT)
		tr_warn("cannot remove %s: %s", path, strerror(errno));
	free(path);
	struct journal_segment **pp = &j->segs;
	while (*pp != s)
		pp = &(*pp)->next;
	*pp = s->next;
	free(s);
}

int journal_append(struct journal *j, char kind, const char *token, const char *connector,
                   const void *payload, size_t len, uint64_t *seq)
{
	char head[512];
	int n = snprintf(head, sizeof(head), "E %" PRIu64 " %c %s %s %zu\n", j->next_seq, kind,
	                 token, connector, len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return TR_E_INVAL;
	/* One write(2) per record: header, payload and trailing newline together. */
	char *rec = tr_xmalloc((size_t)n + len + 1);
	memcpy(rec, head, (size_t)n);
	memcpy(rec + n, payload, len);
	rec[(size_t)n + len] = '\n';
	int rc = journal_write_all(j->fd, rec, (size_t)n + len + 1);
	free(rec);
	if (rc != TR_OK)
		return rc;
	j->size += (size_t)n + len + 1;
	*seq = j->next_seq++;
	j->active->last_seq = *seq;
	j->active->live++;
	if (j->size > JOURNAL_SEGMENT_MAX) {
		char err[TR_ERR_LEN];
		if (journal_new_segment(j, j->active->num + 1, err) != TR_OK)
			tr_error("%s", err); /* keep appending to the old one */
	}
	return TR_OK;
}

void journal_done(struct journal *j, uint64_t seq)
{
	char rec[48];
	int n = snprintf(rec, sizeof(rec), "D %" PRIu64 "\n", seq);
	for (struct journal_segment *s = j->segs; s; s = s->next) {
		if (seq < s->first_seq || seq > s->last_seq)
			continue;
		if (s->live)
			s->live--;
		if (s == j->active) {
			if (s->live == 0 && j->size > 0) {
				/* Everything written is done: start the segment again from empty.
				 */
				if (ftruncate(j->fd, 0) == 0) {
					j->size = 0;
					s->first_seq = j->next_seq;
					s->last_seq = j->next_seq;
					return;
				}
			}
			if (journal_write_all(j->fd, rec, (size_t)n) == TR_OK)
				j->size += (size_t)n;
		} else if (s->live == 0) {
			journal_drop_segment(j, s);
		}
		return;
	}
}

struct journal_pending {
	uint64_t seq;
	char kind;
	char *token, *connector, *payload;
	size_t len;
};

static int journal_cmp_num(const void *a, const void *b)
{
	unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
	return x < y ? -1 : x > y;
}

/* Reads one segment into pend (a map from seq to record, as a growing array). */
static void journal_read_segment(const char *path, struct journal_pending **pend, size_t *n,
                                 size_t *cap, struct tr_map *idx)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		tr_warn("cannot read journal %s: %s", path, strerror(errno));
		return;
	}
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		uint64_t seq;
		if (line[0] == 'D') {
			if (sscanf(line, "D %" SCNu64, &seq) != 1)
				break;
			char key[24];
			int kl = snprintf(key, sizeof(key), "%" PRIu64, seq);
			void *v = tr_map_del(idx, key, (size_t)kl);
			if (v) {
				struct journal_pending *p = &(*pend)[(uintptr_t)v - 1];
				free(p->payload);
				free(p->token);
				free(p->connector);
				p->payload = p->token = p->connector = NULL;
			}
			continue;
		}
		char kind, token[80], conn[80];
		size_t len;
		if (sscanf(line, "E %" SCNu64 " %c %79s %79s %zu", &seq, &kind, token, conn,
		           &len) != 5 ||
		    len > TR_EVENT_MAX_PAYLOAD + 1024) {
			tr_warn("journal %s: unreadable record; ignoring the rest of the file",
			        path);
			break;
		}
		char *payload = tr_xmalloc(len + 1);
		if (fread(payload, 1, len + 1, f) != len + 1 || payload[len] != '\n') {
			free(payload);
			tr_warn("journal %s: torn last record ignored", path);
			break;
		}
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			*pend = tr_xrealloc(*pend, *cap * sizeof(**pend));
		}
		char key[24];
		int kl = snprintf(key, sizeof(key), "%" PRIu64, seq);
		tr_map_put(idx, key, (size_t)kl, (void *)(uintptr_t)(*n + 1));
		(*pend)[(*n)++] = (struct journal_pending){.seq = seq,
		                                           .kind = kind,
		                                           .token = tr_xstrdup(token),
		                                           .connector = tr_xstrdup(conn),
		                                           .payload = payload,
		                                           .len = len};
	}
	fclose(f);
}

struct journal *journal_open(const char *dir, journal_replay_fn *fn, void *arg,
                             char err[TR_ERR_LEN])
{
	struct journal *j = tr_xcalloc(1, sizeof(*j));
	j->dir = tr_xstrdup(dir);
	j->fd = -1;
	j->next_seq = 1;
	unsigned *nums = NULL;
	size_t n_nums = 0;
	struct journal_pending *pend = NULL;
	size_t n_pend = 0, cap_pend = 0;
	struct tr_map idx;
	tr_map_init(&idx);

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, TR_ERR_LEN, "cannot create TRESTLE_STATE_DIR %.150s: %.60s", dir,
		         strerror(errno));
		goto fail;
	}
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, TR_ERR_LEN, "cannot open TRESTLE_STATE_DIR %.150s: %.60s", dir,
		         strerror(errno));
		goto fail;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		unsigned num;
		char tail;
		if (sscanf(de->d_name, JOURNAL_PREFIX "%u%c", &num, &tail) != 1)
			continue;
		nums = tr_xrealloc(nums, (n_nums + 1) * sizeof(*nums));
		nums[n_nums++] = num;
	}
	closedir(d);
	if (n_nums)
		qsort(nums, n_nums, sizeof(*nums), journal_cmp_num);
	for (size_t i = 0; i < n_nums; i++) {
		char *path = journal_path(j, nums[i]);
		journal_read_segment(path, &pend, &n_pend, &cap_pend, &idx);
		free(path);
	}
	unsigned next_num = n_nums ? nums[n_nums - 1] + 1 : 0;
	if (journal_new_segment(j, next_num, err) != TR_OK)
		goto fail;
	/* Re-journal what was not done into the new segment, then forget the old files. */
	size_t replayed = 0;
	for (size_t i = 0; i < n_pend; i++) {
		struct journal_pending *p = &pend[i];
		if (!p->payload)
			continue;
		uint64_t seq;
		if (journal_append(j, p->kind, p->token, p->connector, p->payload, p->len, &seq) !=
		    TR_OK) {
			snprintf(err, TR_ERR_LEN, "cannot write journal: %.100s", strerror(errno));
			goto fail;
		}
		replayed++;
	}
	for (size_t i = 0; i < n_nums; i++) {
		char *path = journal_path(j, nums[i]);
		unlink(path);
		free(path);
	}
	if (replayed)
		tr_info("journal: replaying %zu events not finished before the last stop",
		        replayed);
	uint64_t seq = j->active->first_seq;
	for (size_t i = 0; i < n_pend; i++) {
		struct journal_pending *p = &pend[i];
		if (!p->payload)
			continue;
		fn(arg, seq++, p->kind, p->token, p->connector, p->payload, p->len);
	}
	goto out;
fail:
	journal_close(j);
	j = NULL;
out:
	for (size_t i = 0; i < n_pend; i++) {
		free(pend[i].payload);
		free(pend[i].token);
		free(pend[i].connector);
	}
	free(pend);
	free(nums);
	tr_map_cleanup(&idx);
	return j;
}

void journal_close(struct journal *j)
{
	if (!j)
		return;
	if (j->fd >= 0)
		close(j->fd);
	while (j->segs) {
		struct journal_segment *s = j->segs;
		j->segs = s->next;
		free(s);
	}
	free(j->dir);
	free(j);
}
