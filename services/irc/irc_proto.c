/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* IRC wire helpers, all pure: the line parser (IRCv3 tags, prefix, params), the one line builder
 * that refuses CR/LF/NUL, rfc1459 casemapping, CAP negotiation state, SASL PLAIN, templates,
 * the ZWJ name guard and server-time parsing. */
#include <string.h>
#include "alloc.h"
#include "irc.h"
#include "utf8.h"

/* IRCv3 message-tags escaping: \: ; \s space \\ \ \r CR \n LF; a lone trailing \ is dropped. */
static void irc_tag_unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r; r++) {
		if (*r != '\\') {
			*w++ = *r;
			continue;
		}
		r++;
		switch (*r) {
		case ':':
			*w++ = ';';
			break;
		case 's':
			*w++ = ' ';
			break;
		case 'r':
			*w++ = '\r';
			break;
		case 'n':
			*w++ = '\n';
			break;
		case '\0':
			r--;
			break;
		default:
			*w++ = *r;
		}
	}
	*w = '\0';
}

void irc_msg_cleanup(struct irc_msg *m)
{
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

int irc_msg_parse(const char *line, size_t len, struct irc_msg *m)
{
	memset(m, 0, sizeof(*m));
	if (memchr(line, '\0', len))
		return TR_E_PROTO;
	m->buf = tr_xstrndup(line, len);
	char *p = m->buf;
	if (*p == '@') {
		char *end = strchr(p, ' ');
		if (!end)
			goto bad;
		*end = '\0';
		char *t = p + 1;
		p = end + 1;
		while (t && *t) {
			char *next = strchr(t, ';');
			if (next)
				*next++ = '\0';
			char *eq = strchr(t, '=');
			if (eq) {
				*eq++ = '\0';
				irc_tag_unescape(eq);
			}
			if (*t && m->n_tags < IRC_MAX_TAGS) {
				m->tags[m->n_tags].key = t;
				m->tags[m->n_tags].val = eq ? eq : "";
				m->n_tags++;
			}
			t = next;
		}
	}
	while (*p == ' ')
		p++;
	if (*p == ':') {
		char *end = strchr(p, ' ');
		if (!end)
			goto bad;
		*end = '\0';
		m->prefix = p + 1;
		p = end + 1;
	}
	while (*p == ' ')
		p++;
	if (!*p)
		goto bad;
	m->command = p;
	char *sp = strchr(p, ' ');
	if (sp) {
		*sp = '\0';
		p = sp + 1;
	} else {
		p = NULL;
	}
	while (p && *p && m->n_params < IRC_MAX_PARAMS) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		if (*p == ':' || m->n_params == IRC_MAX_PARAMS - 1) {
			m->params[m->n_params++] = *p == ':' ? p + 1 : p;
			break;
		}
		m->params[m->n_params++] = p;
		sp = strchr(p, ' ');
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	return TR_OK;
bad:
	irc_msg_cleanup(m);
	return TR_E_PROTO;
}

const char *irc_msg_tag(const struct irc_msg *m, const char *key)
{
	for (size_t i = 0; i < m->n_tags; i++)
		if (strcmp(m->tags[i].key, key) == 0)
			return m->tags[i].val;
	return NULL;
}

const char *irc_msg_param(const struct irc_msg *m, size_t i)
{
	return i < m->n_params ? m->params[i] : "";
}

bool irc_prefix_nick(const char *prefix, char *out, size_t outlen)
{
	if (!prefix || !*prefix || outlen == 0)
		return false;
	size_t n = strcspn(prefix, "!@");
	if (!prefix[n] && strchr(prefix, '.'))
		return false;
	if (n >= outlen)
		n = outlen - 1;
	memcpy(out, prefix, n);
	out[n] = '\0';
	return n > 0;
}

static bool irc_cmd_valid(const char *cmd)
{
	size_t n = strlen(cmd);
	if (n == 0)
		return false;
	bool digits = cmd[0] >= '0' && cmd[0] <= '9';
	for (size_t i = 0; i < n; i++) {
		char ch = cmd[i];
		bool d = ch >= '0' && ch <= '9';
		bool a = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z');
		if (digits ? !d : !a)
			return false;
	}
	return !digits || n == 3;
}

static bool irc_tag_key_valid(const char *k)
{
	if (!*k)
		return false;
	for (const char *p = k; *p; p++) {
		char ch = *p;
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '/' || ch == '.' || ch == '+'))
			return false;
	}
	return true;
}

int irc_line_build(struct tr_buf *out, const struct irc_tag *tags, size_t n_tags, const char *cmd,
                   size_t n, const char *const *params, const size_t *lens)
{
	if (!cmd || !irc_cmd_valid(cmd) || n > IRC_MAX_PARAMS)
		return TR_E_INVAL;
	for (size_t i = 0; i < n_tags; i++) {
		if (!irc_tag_key_valid(tags[i].key))
			return TR_E_INVAL;
		/* Tag values are escaped below, but a NUL would still end the string early. */
		if (tags[i].val && strpbrk(tags[i].val, "\r\n"))
			return TR_E_INVAL;
	}
	size_t body = strlen(cmd);
	for (size_t i = 0; i < n; i++) {
		const char *p = params[i];
		size_t len = lens ? lens[i] : strlen(p);
		if (memchr(p, '\0', len) || memchr(p, '\r', len) || memchr(p, '\n', len))
			return TR_E_INVAL;
		bool last = i == n - 1;
		if (!last && (len == 0 || p[0] == ':' || memchr(p, ' ', len)))
			return TR_E_INVAL;
		body += 1 + len;
		if (last && (len == 0 || p[0] == ':' || memchr(p, ' ', len)))
			body++;
	}
	if (body + 2 > IRC_LINE_MAX)
		return TR_E_TOOBIG;
	struct tr_buf b;
	tr_buf_init(&b, IRC_TAGS_MAX + IRC_LINE_MAX);
	int rc = TR_OK;
	for (size_t i = 0; i < n_tags && rc == TR_OK; i++) {
		rc = tr_buf_append(&b, i ? ";" : "@", 1);
		if (rc == TR_OK)
			rc = tr_buf_appends(&b, tags[i].key);
		if (rc != TR_OK || !tags[i].val || !*tags[i].val)
			continue;
		rc = tr_buf_append(&b, "=", 1);
		for (const char *v = tags[i].val; *v && rc == TR_OK; v++) {
			const char *esc = *v == ';'    ? "\\:"
			                  : *v == ' '  ? "\\s"
			                  : *v == '\\' ? "\\\\"
			                               : NULL;
			rc = esc ? tr_buf_appends(&b, esc) : tr_buf_append(&b, v, 1);
		}
	}
	if (rc == TR_OK && n_tags)
		rc = tr_buf_append(&b, " ", 1);
	if (rc == TR_OK)
		rc = tr_buf_appends(&b, cmd);
	for (size_t i = 0; i < n && rc == TR_OK; i++) {
		size_t len = lens ? lens[i] : strlen(params[i]);
		bool colon =
		    i == n - 1 && (len == 0 || params[i][0] == ':' || memchr(params[i], ' ', len));
		rc = tr_buf_appends(&b, colon ? " :" : " ");
		if (rc == TR_OK)
			rc = tr_buf_append(&b, params[i], len);
	}
	if (rc == TR_OK)
		rc = tr_buf_append(&b, "\r\n", 2);
	if (rc == TR_OK)
		rc = tr_buf_append(out, b.data, b.len);
	tr_buf_cleanup(&b);
	return rc;
}

static char irc_fold_char(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return (char)(ch - 'A' + 'a');
	switch (ch) {
	case '[':
		return '{';
	case ']':
		return '}';
	case '\\':
		return '|';
	case '~':
		return '^';
	default:
		return ch;
	}
}

void irc_casefold(char *s)
{
	for (; *s; s++)
		*s = irc_fold_char(*s);
}

bool irc_caseeq(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if (irc_fold_char(*a) != irc_fold_char(*b))
			return false;
	return *a == *b;
}

bool irc_is_channel(const char *s)
{
	return s && (*s == '#' || *s == '&' || *s == '+' || *s == '!') && s[1];
}

/* ---- CAP ---- */

static const struct {
	const char *name;
	unsigned bit;
} irc_cap_names[] = {
    {"sasl", IRC_CAP_SASL},
    {"server-time", IRC_CAP_SERVER_TIME},
    {"message-tags", IRC_CAP_MESSAGE_TAGS},
    {"echo-message", IRC_CAP_ECHO},
    {"labeled-response", IRC_CAP_LABELED},
    {"batch", IRC_CAP_BATCH},
    {"multi-prefix", IRC_CAP_MULTI_PREFIX},
};

static unsigned irc_cap_bit_of(const char *name, size_t n)
{
	for (size_t i = 0; i < TR_ARRAY_LEN(irc_cap_names); i++)
		if (strlen(irc_cap_names[i].name) == n &&
		    memcmp(irc_cap_names[i].name, name, n) == 0)
			return irc_cap_names[i].bit;
	return 0;
}

void irc_caps_ls(struct irc_caps *caps, const char *list, bool more)
{
	const char *p = list;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (!n)
			break;
		size_t name_len = strcspn(p, "= ");
		if (name_len > n)
			name_len = n;
		unsigned bit = irc_cap_bit_of(p, name_len);
		caps->offered |= bit;
		if (bit == IRC_CAP_SASL) {
			if (name_len == n) {
				caps->sasl_plain = true;
			} else {
				/* sasl=PLAIN,EXTERNAL: a comma-separated mechanism list. */
				const char *v = p + name_len + 1;
				size_t vn = n - name_len - 1;
				for (size_t i = 0; i + 5 <= vn; i++)
					if (memcmp(v + i, "PLAIN", 5) == 0 &&
					    (i == 0 || v[i - 1] == ',') &&
					    (i + 5 == vn || v[i + 5] == ','))
						caps->sasl_plain = true;
			}
		}
		p += n;
	}
	caps->ls_done = !more;
}

void irc_caps_req(const struct irc_caps *caps, bool want_sasl, char *out, size_t outlen)
{
	size_t len = 0;
	if (outlen)
		out[0] = '\0';
	for (size_t i = 0; i < TR_ARRAY_LEN(irc_cap_names); i++) {
		unsigned bit = irc_cap_names[i].bit;
		if (!(caps->offered & bit))
			continue;
		if (bit == IRC_CAP_SASL && (!want_sasl || !caps->sasl_plain))
			continue;
		/* labeled-response is useless without batch. */
		if (bit == IRC_CAP_LABELED && !(caps->offered & IRC_CAP_BATCH))
			continue;
		size_t n = strlen(irc_cap_names[i].name);
		if (len + n + 2 > outlen)
			break;
		if (len)
			out[len++] = ' ';
		memcpy(out + len, irc_cap_names[i].name, n);
		len += n;
		out[len] = '\0';
	}
}

void irc_caps_ack(struct irc_caps *caps, const char *list)
{
	const char *p = list;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t n = strcspn(p, " ");
		if (!n)
			break;
		bool off = *p == '-';
		unsigned bit = irc_cap_bit_of(p + off, n - off);
		if (off)
			caps->acked &= ~bit;
		else
			caps->acked |= bit;
		p += n;
	}
}

static const char irc_b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *irc_sasl_plain(const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);
	size_t n = ul + 1 + ul + 1 + pl;
	unsigned char *raw = tr_xmalloc(n);
	memcpy(raw, user, ul);
	raw[ul] = '\0';
	memcpy(raw + ul + 1, user, ul);
	raw[2 * ul + 1] = '\0';
	memcpy(raw + 2 * ul + 2, pass, pl);
	char *out = tr_xmalloc((n + 2) / 3 * 4 + 1);
	size_t o = 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)raw[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)raw[i + 1] << 8;
		if (i + 2 < n)
			v |= raw[i + 2];
		out[o++] = irc_b64[(v >> 18) & 63];
		out[o++] = irc_b64[(v >> 12) & 63];
		out[o++] = i + 1 < n ? irc_b64[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? irc_b64[v & 63] : '=';
	}
	out[o] = '\0';
	/* The buffer held the password. */
	memset(raw, 0, n);
	free(raw);
	return out;
}

/* ---- text ---- */

char *irc_name_guard(const char *name)
{
	struct tr_buf b;
	tr_buf_init(&b, TR_EVENT_MAX_NAME * 2);
	size_t len = strlen(name);
	bool first = true;
	int rc = TR_OK;
	for (size_t i = 0; i < len && rc == TR_OK;) {
		size_t sl = tr_utf8_seq_len(name + i, len - i);
		if (sl == 0)
			sl = 1;
		unsigned char ch = (unsigned char)name[i];
		if (ch < 0x20 || ch == 0x7f) {
			i += sl;
			continue;
		}
		rc = tr_buf_append(&b, name + i, sl);
		i += sl;
		if (first && rc == TR_OK && i < len)
			rc = tr_buf_appends(&b, "\u200d");
		first = false;
	}
	if (!b.data)
		return tr_xstrdup("");
	return tr_buf_take(&b);
}

char *irc_template(const char *tpl, const char *name, const char *text, const char *reaction)
{
	struct tr_buf b;
	tr_buf_init(&b, 4 * TR_EVENT_MAX_TEXT);
	int rc = TR_OK;
	for (const char *p = tpl; *p && rc == TR_OK;) {
		const char *val = NULL;
		size_t skip = 0;
		if (strncmp(p, "{name}", 6) == 0) {
			val = name, skip = 6;
		} else if (strncmp(p, "{text}", 6) == 0) {
			val = text, skip = 6;
		} else if (strncmp(p, "{reaction}", 10) == 0) {
			val = reaction, skip = 10;
		}
		if (skip) {
			rc = tr_buf_appends(&b, val ? val : "");
			p += skip;
		} else {
			rc = tr_buf_append(&b, p, 1);
			p++;
		}
	}
	if (!b.data)
		return tr_xstrdup("");
	return tr_buf_take(&b);
}

static bool irc_digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t irc_days_from_civil(int y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

bool irc_parse_time(const char *s, int64_t *ms)
{
	int y, mo, d, h, mi, se, frac = 0;
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return false;
	if (!irc_digits(s, 4, &y) || !irc_digits(s + 5, 2, &mo) || !irc_digits(s + 8, 2, &d) ||
	    !irc_digits(s + 11, 2, &h) || !irc_digits(s + 14, 2, &mi) ||
	    !irc_digits(s + 17, 2, &se))
		return false;
	const char *p = s + 19;
	if (*p == '.') {
		p++;
		int nd = 0;
		while (*p >= '0' && *p <= '9') {
			if (nd < 3)
				frac = frac * 10 + (*p - '0');
			nd++;
			p++;
		}
		if (nd == 0)
			return false;
		for (; nd < 3; nd++)
			frac *= 10;
	}
	if (strcmp(p, "Z") != 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    se > 60)
		return false;
	int64_t days = irc_days_from_civil(y, mo, d);
	*ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)se * 1000 + frac;
	return true;
}
