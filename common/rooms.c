/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* The rooms file parser and validator (DESIGN §3), and its JSON form kept in Redis. The parser
 * goes on past every problem so an operator sees all of them at once; the parser and the JSON
 * loader share one builder so both apply the same rules. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "alloc.h"
#include "event.h"
#include "map.h"
#include "rooms.h"
#include "utf8.h"

#define TR_ROOM_NAME_MAX   64
#define TR_ROOMS_QUOTE_MAX 64 /* bytes of operator text echoed in an error */

static const char *const tr_mode_names[] = {"inout", "in", "out"};

const char *tr_mode_name(enum tr_mode m)
{
	if ((unsigned)m >= TR_ARRAY_LEN(tr_mode_names))
		return NULL;
	return tr_mode_names[m];
}

static int tr_mode_parse(const char *s, size_t len, enum tr_mode *out)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(tr_mode_names); i++) {
		if (strlen(tr_mode_names[i]) == len && memcmp(s, tr_mode_names[i], len) == 0) {
			*out = (enum tr_mode)i;
			return TR_OK;
		}
	}
	return TR_E_INVAL;
}

static bool tr_rooms_is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool tr_rooms_name_valid(const char *s, size_t len)
{
	if (len < 1 || len > TR_ROOM_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		          (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

/* The reason a channel is refused, or NULL. The channel becomes an identifier on the bus, so it
 * obeys the event limits; a control character could smuggle a CR/LF into an IRC line. */
static const char *tr_rooms_channel_problem(const char *s, size_t len)
{
	if (len == 0)
		return "empty channel";
	if (len > TR_EVENT_MAX_ID)
		return "channel is longer than 1024 bytes";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\t')
			return "channel must be one token without white space (then an optional "
			       "mode)";
		if (c < 0x20 || c == 0x7f)
			return "channel contains a control character";
	}
	if (!tr_utf8_valid(s, len))
		return "channel is not valid UTF-8";
	return NULL;
}

/* Operator text quoted in an error: bounded, cut on a code point, control characters shown as
 * '?' so that an error stays one line. s must be valid UTF-8. */
static void tr_rooms_quote(char out[TR_ROOMS_QUOTE_MAX + 8], const char *s, size_t len)
{
	size_t n = len;
	bool cut = false;
	if (n > TR_ROOMS_QUOTE_MAX) {
		n = tr_utf8_truncate(s, len, TR_ROOMS_QUOTE_MAX);
		cut = true;
	}
	out[0] = '\'';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		out[1 + i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	size_t o = 1 + n;
	if (cut) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o++] = '\'';
	out[o] = '\0';
}

/* Arrays grow when their length reaches a power of two, so no capacity field is needed. */
static void *tr_rooms_grow(void *p, size_t n, size_t size)
{
	if (n == 0)
		return tr_xmalloc(size);
	if ((n & (n - 1)) == 0)
		return tr_xrealloc(p, 2 * n * size);
	return p;
}

void tr_rooms_cleanup(struct tr_rooms *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_rooms; i++) {
		struct tr_room *room = &r->rooms[i];
		for (size_t j = 0; j < room->n_eps; j++) {
			free(room->eps[j].connector);
			free(room->eps[j].channel);
		}
		free(room->eps);
		free(room->name);
	}
	free(r->rooms);
	r->rooms = NULL;
	r->n_rooms = 0;
}

/* Shared by the parser and the JSON loader: duplicate checks over room names (value: index + 1)
 * and over "room NUL connector NUL channel" (value: the declaring line). */
struct tr_rooms_builder {
	struct tr_rooms r;
	struct tr_map names;
	struct tr_map eps;
};

static void tr_rooms_builder_init(struct tr_rooms_builder *b)
{
	memset(&b->r, 0, sizeof(b->r));
	tr_map_init(&b->names);
	tr_map_init(&b->eps);
}

static void tr_rooms_builder_cleanup(struct tr_rooms_builder *b)
{
	tr_rooms_cleanup(&b->r);
	tr_map_cleanup(&b->names);
	tr_map_cleanup(&b->eps);
}

/* The room already named so, or NULL. */
static struct tr_room *tr_rooms_builder_find(struct tr_rooms_builder *b, const char *name,
                                             size_t len)
{
	uintptr_t idx = (uintptr_t)tr_map_get(&b->names, name, len);
	return idx ? &b->r.rooms[idx - 1] : NULL;
}

static size_t tr_rooms_builder_add_room(struct tr_rooms_builder *b, const char *name, size_t len,
                                        int line)
{
	b->r.rooms = tr_rooms_grow(b->r.rooms, b->r.n_rooms, sizeof(*b->r.rooms));
	struct tr_room *room = &b->r.rooms[b->r.n_rooms++];
	memset(room, 0, sizeof(*room));
	room->name = tr_xstrndup(name, len);
	room->line = line;
	(void)tr_map_put(&b->names, name, len, (void *)(uintptr_t)b->r.n_rooms);
	return b->r.n_rooms - 1;
}

/* The endpoint's duplicate key. Room names, connector names and channels hold no NUL. */
static char *tr_rooms_ep_key(const char *room, const char *conn, size_t clen, const char *chan,
                             size_t chlen, size_t *klen)
{
	size_t rlen = strlen(room);
	*klen = rlen + 1 + clen + 1 + chlen;
	char *k = tr_xmalloc(*klen);
	memcpy(k, room, rlen);
	k[rlen] = '\0';
	memcpy(k + rlen + 1, conn, clen);
	k[rlen + 1 + clen] = '\0';
	memcpy(k + rlen + 2 + clen, chan, chlen);
	return k;
}

/* Returns 0 after adding it, or the line (-1 from JSON) of the same endpoint in the room. */
static int tr_rooms_builder_add_ep(struct tr_rooms_builder *b, struct tr_room *room,
                                   const char *conn, size_t clen, const char *chan, size_t chlen,
                                   enum tr_mode mode, int line)
{
	size_t klen;
	char *key = tr_rooms_ep_key(room->name, conn, clen, chan, chlen, &klen);
	int rc = 0;
	void *prev = tr_map_get(&b->eps, key, klen);
	if (prev) {
		rc = (int)(intptr_t)prev;
		goto out;
	}
	(void)tr_map_put(&b->eps, key, klen, (void *)(intptr_t)(line > 0 ? line : -1));
	room->eps = tr_rooms_grow(room->eps, room->n_eps, sizeof(*room->eps));
	struct tr_endpoint *ep = &room->eps[room->n_eps++];
	ep->connector = tr_xstrndup(conn, clen);
	ep->channel = tr_xstrndup(chan, chlen);
	ep->mode = mode;
	ep->line = line;
out:
	free(key);
	return rc;
}

/* ---- the text parser ---- */

/* Appends "FILE:LINE: msg" (or "FILE: msg" for line 0) to errors, which may be NULL. A full
 * buffer still fails the parse; the first lines say enough. */
static void tr_rooms_note(struct tr_buf *errors, const char *file, int line, const char *msg)
{
	if (!errors)
		return;
	int rc = line > 0 ? tr_buf_printf(errors, "%s:%d: %s\n", file, line, msg)
	                  : tr_buf_printf(errors, "%s: %s\n", file, msg);
	(void)rc;
}

struct tr_rooms_parser {
	struct tr_rooms_builder b;
	const char *file;
	struct tr_buf *errors;
	int n_errors;
	int line;
	/* The section the following lines belong to: -1 before the first; a kept room's index;
	 * or the scratch room for a section that is refused (its lines are still checked). */
	long cur;
	bool cur_scratch;
	struct tr_room scratch;
	size_t cur_lines; /* endpoint lines seen in the current section, good or bad */
};

static void tr_rooms_err(struct tr_rooms_parser *p, int line, const char *fmt, ...) TR_PRINTF(3, 4);

static void tr_rooms_err(struct tr_rooms_parser *p, int line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	p->n_errors++;
	tr_rooms_note(p->errors, p->file, line, msg);
}

static void tr_rooms_scratch_reset(struct tr_rooms_parser *p)
{
	for (size_t j = 0; j < p->scratch.n_eps; j++) {
		free(p->scratch.eps[j].connector);
		free(p->scratch.eps[j].channel);
	}
	free(p->scratch.eps);
	free(p->scratch.name);
	memset(&p->scratch, 0, sizeof(p->scratch));
}

/* Called at each new section and at the end of the file. */
static void tr_rooms_end_section(struct tr_rooms_parser *p)
{
	if (p->cur >= 0 && !p->cur_scratch && p->cur_lines == 0) {
		struct tr_room *room = &p->b.r.rooms[p->cur];
		tr_rooms_err(p, room->line, "room '%s' has no endpoints", room->name);
	}
	if (p->cur_scratch) {
		/* Its endpoint keys must not clash with a later section of the same name. */
		for (size_t j = 0; j < p->scratch.n_eps; j++) {
			size_t klen;
			struct tr_endpoint *ep = &p->scratch.eps[j];
			char *key =
			    tr_rooms_ep_key(p->scratch.name, ep->connector, strlen(ep->connector),
			                    ep->channel, strlen(ep->channel), &klen);
			(void)tr_map_del(&p->b.eps, key, klen);
			free(key);
		}
		tr_rooms_scratch_reset(p);
	}
	p->cur_scratch = false;
	p->cur_lines = 0;
}

/* A scratch room gets a name no real room can have, so its keys never collide. */
static void tr_rooms_start_scratch(struct tr_rooms_parser *p)
{
	p->scratch.name = tr_xstrdup(" scratch");
	p->cur = 0;
	p->cur_scratch = true;
}

static void tr_rooms_section(struct tr_rooms_parser *p, const char *s, size_t len)
{
	char q[TR_ROOMS_QUOTE_MAX + 8];
	tr_rooms_end_section(p);
	p->cur = -1;
	if (len < 2 || s[len - 1] != ']') {
		tr_rooms_quote(q, s, len);
		tr_rooms_err(p, p->line, "bad section header %s (expected [room NAME])", q);
		tr_rooms_start_scratch(p);
		return;
	}
	const char *in = s + 1;
	size_t n = len - 2;
	while (n && tr_rooms_is_space(*in)) {
		in++;
		n--;
	}
	while (n && tr_rooms_is_space(in[n - 1]))
		n--;
	size_t klen = 0;
	while (klen < n && !tr_rooms_is_space(in[klen]))
		klen++;
	const char *name = in + klen;
	size_t nlen = n - klen;
	while (nlen && tr_rooms_is_space(*name)) {
		name++;
		nlen--;
	}
	if (klen != 4 || memcmp(in, "room", 4) != 0) {
		tr_rooms_quote(q, in, klen);
		tr_rooms_err(p, p->line, "unknown section kind %s (expected [room NAME])", q);
	} else if (nlen == 0) {
		tr_rooms_err(p, p->line, "missing room name (expected [room NAME])");
	} else if (!tr_rooms_name_valid(name, nlen)) {
		tr_rooms_quote(q, name, nlen);
		tr_rooms_err(p, p->line, "bad room name %s (1 to 64 of A-Z a-z 0-9 _ . -)", q);
	} else {
		struct tr_room *prev = tr_rooms_builder_find(&p->b, name, nlen);
		if (prev) {
			tr_rooms_err(p, p->line, "duplicate room '%s' (first declared at line %d)",
			             prev->name, prev->line);
		} else {
			p->cur = (long)tr_rooms_builder_add_room(&p->b, name, nlen, p->line);
			return;
		}
	}
	tr_rooms_start_scratch(p);
}

static void tr_rooms_endpoint(struct tr_rooms_parser *p, const char *s, size_t len)
{
	char q[TR_ROOMS_QUOTE_MAX + 8];
	if (p->cur < 0) {
		tr_rooms_err(p, p->line, "text outside a section (start one with [room NAME])");
		return;
	}
	p->cur_lines++;
	const char *eq = memchr(s, '=', len);
	if (!eq) {
		tr_rooms_err(p, p->line, "expected 'connector = channel [mode]' (no '=')");
		return;
	}
	const char *key = s;
	size_t klen = (size_t)(eq - s);
	while (klen && tr_rooms_is_space(key[klen - 1]))
		klen--;
	const char *val = eq + 1;
	size_t vlen = len - (size_t)(val - s);
	while (vlen && tr_rooms_is_space(*val)) {
		val++;
		vlen--;
	}
	/* Tokens of the value: channel, then an optional mode. */
	const char *tok[3];
	size_t tlen[3];
	size_t nt = 0;
	for (size_t i = 0; i < vlen;) {
		if (tr_rooms_is_space(val[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < vlen && !tr_rooms_is_space(val[j]))
			j++;
		if (nt < 3) {
			tok[nt] = val + i;
			tlen[nt] = j - i;
		}
		nt++;
		i = j;
	}
	bool bad = false;
	char *conn = tr_xstrndup(key, klen);
	if (klen == 0) {
		tr_rooms_err(p, p->line, "missing connector name before '='");
		bad = true;
	} else if (!tr_connector_name_valid(conn)) {
		tr_rooms_quote(q, key, klen);
		tr_rooms_err(p, p->line,
		             "bad connector name %s (expected [a-z0-9][a-z0-9_-]{0,62})", q);
		bad = true;
	}
	enum tr_mode mode = TR_MODE_INOUT;
	const char *why = NULL;
	if (nt == 0) {
		why = "empty channel";
	} else if (nt > 2) {
		why = "channel must be one token without white space (then an optional mode)";
	} else {
		why = tr_rooms_channel_problem(tok[0], tlen[0]);
	}
	if (why) {
		tr_rooms_err(p, p->line, "%s", why);
		bad = true;
	} else if (nt == 2 && tr_mode_parse(tok[1], tlen[1], &mode) != TR_OK) {
		tr_rooms_quote(q, tok[1], tlen[1]);
		tr_rooms_err(p, p->line, "unknown mode %s (expected inout, in or out)", q);
		bad = true;
	}
	if (!bad) {
		struct tr_room *room = p->cur_scratch ? &p->scratch : &p->b.r.rooms[p->cur];
		int prev =
		    tr_rooms_builder_add_ep(&p->b, room, key, klen, tok[0], tlen[0], mode, p->line);
		if (prev) {
			tr_rooms_quote(q, tok[0], tlen[0]);
			tr_rooms_err(p, p->line,
			             "endpoint %s = %s is already in this room (line %d)", conn, q,
			             prev);
		}
	}
	free(conn);
}

static void tr_rooms_line(struct tr_rooms_parser *p, const char *s, size_t len)
{
	if (len && s[len - 1] == '\r')
		len--;
	const char *why = NULL;
	if (memchr(s, '\0', len))
		why = "NUL byte";
	else if (!tr_utf8_valid(s, len))
		why = "invalid UTF-8";
	if (why) {
		tr_rooms_err(p, p->line, "%s", why);
		p->cur_lines++; /* so that its room is not also reported empty */
		/* A broken section header still ends the section before it, so that its lines
		 * are not blamed on the wrong room. */
		size_t i = 0;
		while (i < len && tr_rooms_is_space(s[i]))
			i++;
		if (i < len && s[i] == '[') {
			tr_rooms_end_section(p);
			tr_rooms_start_scratch(p);
		}
		return;
	}
	while (len && tr_rooms_is_space(*s)) {
		s++;
		len--;
	}
	while (len && tr_rooms_is_space(s[len - 1]))
		len--;
	if (len == 0 || s[0] == ';' || s[0] == '#')
		return;
	if (s[0] == '[')
		tr_rooms_section(p, s, len);
	else
		tr_rooms_endpoint(p, s, len);
}

int tr_rooms_parse(const char *text, size_t len, const char *filename, struct tr_rooms *out,
                   struct tr_buf *errors)
{
	struct tr_rooms_parser p = {
	    .file = filename ? filename : "rooms",
	    .errors = errors,
	    .cur = -1,
	};
	memset(out, 0, sizeof(*out));
	if (!text && len)
		return TR_E_INVAL;
	tr_rooms_builder_init(&p.b);
	if (len > TR_ROOMS_MAX_FILE) {
		tr_rooms_note(errors, p.file, 0, "file is larger than 16 MiB");
		p.n_errors++;
		goto out;
	}
	/* Editors on some systems start a UTF-8 file with a byte order mark. */
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) {
		text += 3;
		len -= 3;
	}
	size_t i = 0;
	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		p.line++;
		tr_rooms_line(&p, text + i, n);
		i += n + 1;
	}
	tr_rooms_end_section(&p);
out:
	tr_rooms_scratch_reset(&p);
	if (p.n_errors) {
		tr_rooms_builder_cleanup(&p.b);
		return TR_E_CONFIG;
	}
	*out = p.b.r;
	memset(&p.b.r, 0, sizeof(p.b.r));
	tr_rooms_builder_cleanup(&p.b);
	return TR_OK;
}

int tr_rooms_load(const char *path, struct tr_rooms *out, struct tr_buf *errors)
{
	int rc = TR_E_CONFIG;
	struct tr_buf text;
	tr_buf_init(&text, TR_ROOMS_MAX_FILE);
	memset(out, 0, sizeof(*out));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tr_rooms_note(errors, path, 0, strerror(errno));
		goto out;
	}
	char chunk[65536];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tr_rooms_note(errors, path, 0, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if (tr_buf_append(&text, chunk, (size_t)n) != TR_OK) {
			tr_rooms_note(errors, path, 0, "file is larger than 16 MiB");
			goto out;
		}
	}
	rc = tr_rooms_parse(tr_buf_str(&text), text.len, path, out, errors);
out:
	if (fd >= 0)
		close(fd);
	tr_buf_cleanup(&text);
	return rc;
}

/* ---- JSON ---- */

json_t *tr_rooms_to_json(const struct tr_rooms *r)
{
	json_t *rooms = json_array();
	for (size_t i = 0; i < r->n_rooms; i++) {
		const struct tr_room *room = &r->rooms[i];
		json_t *eps = json_array();
		for (size_t j = 0; j < room->n_eps; j++) {
			const struct tr_endpoint *ep = &room->eps[j];
			json_array_append_new(eps, json_pack("{s:s, s:s, s:s}", "connector",
			                                     ep->connector, "channel", ep->channel,
			                                     "mode", tr_mode_name(ep->mode)));
		}
		json_array_append_new(
		    rooms, json_pack("{s:s, s:o}", "name", room->name, "endpoints", eps));
	}
	return json_pack("{s:i, s:o}", "v", 1, "rooms", rooms);
}

static int tr_rooms_dump_str(struct tr_buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int rc = tr_buf_append(out, "\"", 1);
	for (const char *p = s; rc == TR_OK && *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			rc = tr_buf_append(out, esc, 2);
		} else if (c < 0x20) {
			/* As jansson writes them: the short forms where JSON has one. */
			const char *shortf = c == '\b'   ? "\\b"
			                     : c == '\f' ? "\\f"
			                     : c == '\n' ? "\\n"
			                     : c == '\r' ? "\\r"
			                     : c == '\t' ? "\\t"
			                                 : NULL;
			char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
			rc = shortf ? tr_buf_append(out, shortf, 2) : tr_buf_append(out, u, 6);
		} else {
			rc = tr_buf_append(out, p, 1);
		}
	}
	if (rc == TR_OK)
		rc = tr_buf_append(out, "\"", 1);
	return rc;
}

int tr_rooms_dump(const struct tr_rooms *r, struct tr_buf *out)
{
	int rc = tr_buf_appends(out, "{\"v\":1,\"rooms\":[");
	for (size_t i = 0; rc == TR_OK && i < r->n_rooms; i++) {
		const struct tr_room *room = &r->rooms[i];
		rc = tr_buf_appends(out, i ? ",{\"name\":" : "{\"name\":");
		if (rc == TR_OK)
			rc = tr_rooms_dump_str(out, room->name);
		if (rc == TR_OK)
			rc = tr_buf_appends(out, ",\"endpoints\":[");
		for (size_t j = 0; rc == TR_OK && j < room->n_eps; j++) {
			const struct tr_endpoint *ep = &room->eps[j];
			rc = tr_buf_appends(out, j ? ",{\"connector\":" : "{\"connector\":");
			if (rc == TR_OK)
				rc = tr_rooms_dump_str(out, ep->connector);
			if (rc == TR_OK)
				rc = tr_buf_appends(out, ",\"channel\":");
			if (rc == TR_OK)
				rc = tr_rooms_dump_str(out, ep->channel);
			if (rc == TR_OK)
				rc =
				    tr_buf_printf(out, ",\"mode\":\"%s\"}", tr_mode_name(ep->mode));
		}
		if (rc == TR_OK)
			rc = tr_buf_appends(out, "]}");
	}
	if (rc == TR_OK)
		rc = tr_buf_appends(out, "]}");
	return rc;
}

/* A string member of o, or NULL with err filled. NUL bytes are refused: jansson allows them. */
static const char *tr_rooms_json_str(const json_t *o, const char *key, const char *where,
                                     char err[TR_ERR_LEN], size_t *len)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v)) {
		snprintf(err, TR_ERR_LEN, "%s.%s: missing or not a string", where, key);
		return NULL;
	}
	*len = json_string_length(v);
	const char *s = json_string_value(v);
	if (strlen(s) != *len) {
		snprintf(err, TR_ERR_LEN, "%s.%s: NUL byte", where, key);
		return NULL;
	}
	return s;
}

static int tr_rooms_json_room(struct tr_rooms_builder *b, const json_t *jr, size_t i,
                              char err[TR_ERR_LEN])
{
	char where[64];
	snprintf(where, sizeof(where), "rooms[%zu]", i);
	if (!json_is_object(jr)) {
		snprintf(err, TR_ERR_LEN, "%s: not an object", where);
		return TR_E_INVAL;
	}
	size_t nlen;
	const char *name = tr_rooms_json_str(jr, "name", where, err, &nlen);
	if (!name)
		return TR_E_INVAL;
	if (!tr_rooms_name_valid(name, nlen)) {
		snprintf(err, TR_ERR_LEN, "%s.name: bad room name", where);
		return TR_E_INVAL;
	}
	if (tr_rooms_builder_find(b, name, nlen)) {
		snprintf(err, TR_ERR_LEN, "%s.name: duplicate room '%s'", where, name);
		return TR_E_INVAL;
	}
	const json_t *eps = json_object_get(jr, "endpoints");
	if (!json_is_array(eps) || json_array_size(eps) == 0) {
		snprintf(err, TR_ERR_LEN, "%s.endpoints: missing, empty or not an array", where);
		return TR_E_INVAL;
	}
	size_t idx = tr_rooms_builder_add_room(b, name, nlen, 0); /* may move b->r.rooms */
	struct tr_room *room = &b->r.rooms[idx];
	for (size_t j = 0; j < json_array_size(eps); j++) {
		const json_t *je = json_array_get(eps, j);
		char ew[96];
		snprintf(ew, sizeof(ew), "%s.endpoints[%zu]", where, j);
		if (!json_is_object(je)) {
			snprintf(err, TR_ERR_LEN, "%s: not an object", ew);
			return TR_E_INVAL;
		}
		size_t clen, chlen;
		const char *conn = tr_rooms_json_str(je, "connector", ew, err, &clen);
		if (!conn)
			return TR_E_INVAL;
		if (!tr_connector_name_valid(conn)) {
			snprintf(err, TR_ERR_LEN, "%s.connector: bad connector name", ew);
			return TR_E_INVAL;
		}
		const char *chan = tr_rooms_json_str(je, "channel", ew, err, &chlen);
		if (!chan)
			return TR_E_INVAL;
		const char *why = tr_rooms_channel_problem(chan, chlen);
		if (why) {
			snprintf(err, TR_ERR_LEN, "%s.channel: %s", ew, why);
			return TR_E_INVAL;
		}
		enum tr_mode mode = TR_MODE_INOUT;
		const json_t *jm = json_object_get(je, "mode");
		if (jm && (!json_is_string(jm) ||
		           tr_mode_parse(json_string_value(jm), json_string_length(jm), &mode))) {
			snprintf(err, TR_ERR_LEN, "%s.mode: expected inout, in or out", ew);
			return TR_E_INVAL;
		}
		if (tr_rooms_builder_add_ep(b, room, conn, clen, chan, chlen, mode, 0)) {
			snprintf(err, TR_ERR_LEN, "%s: endpoint is already in this room", ew);
			return TR_E_INVAL;
		}
	}
	return TR_OK;
}

int tr_rooms_from_json(const json_t *j, struct tr_rooms *out, char err[TR_ERR_LEN])
{
	int rc = TR_E_INVAL;
	struct tr_rooms_builder b;
	tr_rooms_builder_init(&b);
	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	if (!json_is_object(j)) {
		snprintf(err, TR_ERR_LEN, "not a JSON object");
		goto out;
	}
	const json_t *v = json_object_get(j, "v");
	if (!json_is_integer(v) || json_integer_value(v) != 1) {
		snprintf(err, TR_ERR_LEN, "v: missing or not 1");
		goto out;
	}
	const json_t *rooms = json_object_get(j, "rooms");
	if (!json_is_array(rooms)) {
		snprintf(err, TR_ERR_LEN, "rooms: missing or not an array");
		goto out;
	}
	for (size_t i = 0; i < json_array_size(rooms); i++) {
		if (tr_rooms_json_room(&b, json_array_get(rooms, i), i, err) != TR_OK)
			goto out;
	}
	*out = b.r;
	memset(&b.r, 0, sizeof(b.r));
	rc = TR_OK;
out:
	tr_rooms_builder_cleanup(&b);
	return rc;
}

/* ---- queries ---- */

const char **tr_rooms_connectors(const struct tr_rooms *r, size_t *n)
{
	struct tr_map seen;
	tr_map_init(&seen);
	size_t total = 0;
	for (size_t i = 0; i < r->n_rooms; i++)
		total += r->rooms[i].n_eps;
	const char **list = tr_xcalloc(total + 1, sizeof(*list));
	size_t k = 0;
	for (size_t i = 0; i < r->n_rooms; i++) {
		for (size_t j = 0; j < r->rooms[i].n_eps; j++) {
			const char *c = r->rooms[i].eps[j].connector;
			if (tr_map_get(&seen, c, strlen(c)))
				continue;
			(void)tr_map_put(&seen, c, strlen(c), (void *)c);
			list[k++] = c;
		}
	}
	list[k] = NULL;
	tr_map_cleanup(&seen);
	if (n)
		*n = k;
	return list;
}

const char **tr_rooms_channels(const struct tr_rooms *r, const char *connector, size_t *n)
{
	struct tr_map seen;
	tr_map_init(&seen);
	size_t total = 0;
	for (size_t i = 0; i < r->n_rooms; i++)
		total += r->rooms[i].n_eps;
	const char **list = tr_xcalloc(total + 1, sizeof(*list));
	size_t k = 0;
	for (size_t i = 0; i < r->n_rooms; i++) {
		for (size_t j = 0; j < r->rooms[i].n_eps; j++) {
			const struct tr_endpoint *ep = &r->rooms[i].eps[j];
			if (strcmp(ep->connector, connector) != 0)
				continue;
			if (tr_map_get(&seen, ep->channel, strlen(ep->channel)))
				continue;
			(void)tr_map_put(&seen, ep->channel, strlen(ep->channel), ep->channel);
			list[k++] = ep->channel;
		}
	}
	list[k] = NULL;
	tr_map_cleanup(&seen);
	if (n)
		*n = k;
	return list;
}
