// SPDX-License-Identifier: AGPL-3.0-or-later
// A Discord test server for Trestle: REST v10 under /api/v10 (messages, webhooks, reactions,
// threads, gateway discovery) with Discord's JSON shapes, error codes and X-RateLimit-* headers,
// and Gateway v10 over WebSocket (Hello, heartbeat/ACK, Identify with intents and close codes
// 4004/4013/4014, dispatches with sequence numbers, Resume with replay, op 7 Reconnect, op 9
// Invalid Session). Shapes follow ../../../../shared/specs/discord/specs/openapi.json and the
// discord-api-docs gateway pages. State is in memory. A control API under /_test/ lets tests
// inject faults (drop, reconnect, invalid session, 429) and read channels as a human sees them.
//
// Usage: node server.js [--port N] [--host 127.0.0.1] [--heartbeat-ms 41250]
//        [--rate-limit 50] [--rate-window-ms 1000]; prints LISTENING {"port":N} when ready.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { URL } = require('url');
const { WebSocketServer } = require('ws');

const argv = process.argv.slice(2);
function arg(name, def) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
}
const HOST = arg('--host', '127.0.0.1');
const PORT = Number(arg('--port', '0'));
const HEARTBEAT_MS = Number(arg('--heartbeat-ms', '41250'));
const RATE_LIMIT = Number(arg('--rate-limit', '50'));
const RATE_WINDOW_MS = Number(arg('--rate-window-ms', '1000'));
const MAX_EVENTS_KEPT = 5000;

// ---- snowflakes and time ----
const EPOCH = 1420070400000n;
let lastFlake = 0n;
function snowflake() {
  let f = ((BigInt(Date.now()) - EPOCH) << 22n) | (BigInt(process.pid & 0x1f) << 17n);
  if (f <= lastFlake) f = lastFlake + 1n;
  lastFlake = f;
  return f.toString();
}
function iso(ms) {
  return new Date(ms === undefined ? Date.now() : ms).toISOString().replace('Z', '+00:00');
}

// ---- intents and permissions ----
const INTENT = {
  GUILDS: 1 << 0, GUILD_MEMBERS: 1 << 1, GUILD_MESSAGES: 1 << 9,
  GUILD_MESSAGE_REACTIONS: 1 << 10, DIRECT_MESSAGES: 1 << 12, MESSAGE_CONTENT: 1 << 15,
  GUILD_PRESENCES: 1 << 8,
};
const ALL_INTENTS = (1 << 26) - 1;
const PRIVILEGED = INTENT.GUILD_MEMBERS | INTENT.GUILD_PRESENCES | INTENT.MESSAGE_CONTENT;
const PERM = {
  VIEW_CHANNEL: 1n << 10n, SEND_MESSAGES: 1n << 11n, MANAGE_MESSAGES: 1n << 13n,
  READ_MESSAGE_HISTORY: 1n << 16n, ADD_REACTIONS: 1n << 6n, MANAGE_WEBHOOKS: 1n << 29n,
  SEND_MESSAGES_IN_THREADS: 1n << 38n, CREATE_PUBLIC_THREADS: 1n << 35n,
  MENTION_EVERYONE: 1n << 17n,
};
const BOT_PERMS = PERM.VIEW_CHANNEL | PERM.SEND_MESSAGES | PERM.READ_MESSAGE_HISTORY |
  PERM.ADD_REACTIONS | PERM.MANAGE_WEBHOOKS | PERM.SEND_MESSAGES_IN_THREADS |
  PERM.CREATE_PUBLIC_THREADS | PERM.MENTION_EVERYONE;

// ---- accounts ----
// Bot tokens are sent as "Bot <token>", user tokens bare. privileged: the intents switched on
// in the developer portal for the bot's application.
const GUILD_ID = '1100000000000000001';
const users = new Map();
const tokens = new Map();
function addUser(id, username, globalName, token, opts = {}) {
  const u = {
    id, username, global_name: globalName, discriminator: '0', public_flags: 0, flags: 0,
    avatar: crypto.createHash('md5').update(id).digest('hex'), banner: null, accent_color: null,
    avatar_decoration_data: null, bot: !!opts.bot,
  };
  if (!opts.bot) delete u.bot;
  users.set(id, u);
  if (token) tokens.set(token, { user: id, bot: !!opts.bot, privileged: opts.privileged || 0 });
  return u;
}
addUser('1200000000000000001', 'trestle', 'Trestle', 'trestle-bot-token',
  { bot: true, privileged: INTENT.MESSAGE_CONTENT });
addUser('1200000000000000002', 'helper', 'Helper', 'helper-bot-token',
  { bot: true, privileged: INTENT.MESSAGE_CONTENT | INTENT.GUILD_MEMBERS });
addUser('1200000000000000003', 'nocontent', 'No Content', 'nocontent-bot-token', { bot: true });
addUser('1200000000000000011', 'alice', 'Alice Smith', 'alice-token');
addUser('1200000000000000012', 'bob', 'Bob', 'bob-token');

// ---- guild, channels, roles ----
const channels = new Map(); // id -> channel object (text channels and threads)
const denied = new Map(); // channel id -> Set of permission bits denied to bots
function addChannel(id, name, position) {
  channels.set(id, {
    id, type: 0, guild_id: GUILD_ID, name, position, permission_overwrites: [], topic: null,
    nsfw: false, last_message_id: null, rate_limit_per_user: 0, parent_id: null, flags: 0,
  });
}
addChannel('1300000000000000001', 'general', 0);
addChannel('1300000000000000002', 'random', 1);
addChannel('1300000000000000003', 'locked', 2);
denied.set('1300000000000000003', PERM.VIEW_CHANNEL);
const roles = [
  { id: GUILD_ID, name: '@everyone', color: 0, hoist: false, position: 0, managed: false,
    mentionable: false, permissions: BOT_PERMS.toString(), flags: 0, icon: null,
    unicode_emoji: null, description: null },
  { id: '1400000000000000001', name: 'mods', color: 3447003, hoist: true, position: 1,
    managed: false, mentionable: true, permissions: '0', flags: 0, icon: null,
    unicode_emoji: null, description: null },
];
const joinedAt = iso(Date.now() - 86400000);

function member(uid) {
  return { roles: [], nick: null, avatar: null, banner: null, joined_at: joinedAt,
    premium_since: null, deaf: false, mute: false, flags: 0, pending: false,
    communication_disabled_until: null };
}
function guildObject(forUser) {
  return {
    id: GUILD_ID, name: 'Trestle Co-op', icon: null, icon_hash: null, splash: null,
    discovery_splash: null, owner_id: '1200000000000000011', afk_channel_id: null,
    afk_timeout: 300, verification_level: 0, default_message_notifications: 1,
    explicit_content_filter: 0, roles, emojis: [], stickers: [], features: [], mfa_level: 0,
    application_id: null, system_channel_id: null, system_channel_flags: 0,
    rules_channel_id: null, vanity_url_code: null, description: null, banner: null,
    premium_tier: 0, premium_subscription_count: 0, preferred_locale: 'en-US',
    public_updates_channel_id: null, max_video_channel_users: 25, nsfw_level: 0,
    premium_progress_bar_enabled: false, safety_alerts_channel_id: null,
    // GUILD_CREATE extras
    joined_at: joinedAt, large: false, unavailable: false, member_count: users.size,
    voice_states: [], presences: [], stage_instances: [], guild_scheduled_events: [],
    soundboard_sounds: [],
    members: [...users.values()].map((u) => Object.assign(member(u.id), { user: u })),
    channels: [...channels.values()].filter((c) => c.type === 0),
    threads: [...channels.values()].filter((c) => c.type === 11),
  };
}

// ---- messages, webhooks ----
const history = new Map(); // channel id -> [message] (oldest first)
const webhooks = new Map(); // id -> webhook
function chanMessages(cid) {
  if (!history.has(cid)) history.set(cid, []);
  return history.get(cid);
}
function findMessage(cid, mid) {
  return chanMessages(cid).find((m) => m.id === mid && !m._deleted);
}

// Which mentions a message really makes, as Discord decides with allowed_mentions.
function parseMentions(content, allowed, isWebhook) {
  const parse = allowed && Array.isArray(allowed.parse) ? allowed.parse
    : (isWebhook ? ['users'] : ['users', 'roles', 'everyone']);
  const out = { mentions: [], mention_roles: [], mention_everyone: false };
  if (parse.includes('everyone') && /(^|[^\w])@(everyone|here)\b/.test(content))
    out.mention_everyone = true;
  for (const m of content.matchAll(/<@&(\d+)>/g)) {
    if (parse.includes('roles') || (allowed && (allowed.roles || []).includes(m[1])))
      out.mention_roles.push(m[1]);
  }
  for (const m of content.matchAll(/<@!?(\d+)>/g)) {
    const u = users.get(m[1]);
    if (u && (parse.includes('users') || (allowed && (allowed.users || []).includes(m[1]))))
      out.mentions.push(u);
  }
  return out;
}

function publicMessage(m) {
  const o = {};
  for (const [k, v] of Object.entries(m)) if (!k.startsWith('_')) o[k] = v;
  if (m._reactions.size) {
    o.reactions = [...m._reactions.entries()].map(([key, set]) => ({
      count: set.size, count_details: { burst: 0, normal: set.size }, me: set.has(m._viewer),
      me_burst: false, emoji: emojiObject(key), burst_colors: [],
    }));
  }
  if (m.message_reference && m.message_reference.message_id) {
    const ref = findMessage(m.message_reference.channel_id, m.message_reference.message_id);
    o.referenced_message = ref ? publicMessage(ref) : null;
  }
  return o;
}
function emojiObject(key) {
  const i = key.indexOf(':');
  return i > 0 ? { id: key.slice(i + 1), name: key.slice(0, i) } : { id: null, name: key };
}

function newMessage(cid, author, body, extra = {}) {
  const ch = channels.get(cid);
  const content = body.content || '';
  const m = Object.assign({
    type: 0, channel_id: cid, content, attachments: [], embeds: body.embeds || [],
    timestamp: iso(), edited_timestamp: null, flags: body.flags || 0, components: [],
    id: snowflake(), author, mention_everyone: false, mention_roles: [], mentions: [],
    pinned: false, tts: !!body.tts,
  }, parseMentions(content, body.allowed_mentions, !!extra.webhook_id), extra);
  if (body.nonce !== undefined) m.nonce = body.nonce;
  if (body.sticker_items) m.sticker_items = body.sticker_items;
  if (body.attachments && Array.isArray(body.attachments) && body.attachments.some((a) => a.url))
    m.attachments = body.attachments.map((a) => ({
      id: snowflake(), filename: a.filename, size: a.size || 0, url: a.url, proxy_url: a.url,
      content_type: a.content_type, ...(a.width ? { width: a.width, height: a.height } : {}),
    }));
  if (body.message_reference && body.message_reference.message_id) {
    m.type = 19;
    m.message_reference = { type: 0, message_id: body.message_reference.message_id,
      channel_id: body.message_reference.channel_id || cid, guild_id: GUILD_ID };
  }
  if (ch && ch.type === 11) {
    ch.message_count = (ch.message_count || 0) + 1;
    m.position = ch.message_count;
  }
  Object.defineProperty(m, '_reactions', { value: new Map(), enumerable: false });
  chanMessages(cid).push(m);
  if (ch) ch.last_message_id = m.id;
  return m;
}

// ---- gateway ----
const wss = new WebSocketServer({ noServer: true, maxPayload: 15 * 1024 });
const sessions = new Map(); // session_id -> {id, user, intents, seq, events[], conn, resumable}
const gatewayLog = []; // {conn, path, op, ...}
let acksEnabled = true;
let connCounter = 0;

function dispatchAll(t, d, needIntent, contentFor) {
  for (const s of sessions.values()) {
    if (!s.resumable && !s.conn) continue;
    if (needIntent && !(s.intents & needIntent)) continue;
    let data = d;
    if (contentFor && !(s.intents & INTENT.MESSAGE_CONTENT) && d.author && d.author.id !== s.user) {
      const mentioned = (d.mentions || []).some((u) => u.id === s.user);
      if (!mentioned)
        data = Object.assign({}, d, { content: '', embeds: [], attachments: [], components: [] });
    }
    sessionSend(s, t, data);
  }
}
function sessionSend(s, t, d) {
  s.seq += 1;
  const frame = { op: 0, t, s: s.seq, d };
  s.events.push(frame);
  if (s.events.length > MAX_EVENTS_KEPT) s.events.shift();
  if (s.conn && s.conn.ready) s.conn.ws.send(JSON.stringify(frame));
}
function gwLog(conn, what, extra = {}) {
  gatewayLog.push(Object.assign({ conn: conn.n, path: conn.path, what, at: Date.now() }, extra));
}

function readyPayload(s, conn) {
  const u = users.get(s.user);
  return {
    v: 10, user: Object.assign({ verified: true, mfa_enabled: false, email: null }, u),
    guilds: [{ id: GUILD_ID, unavailable: true }], session_id: s.id,
    resume_gateway_url: `ws://${HOST}:${server.address().port}/resume-gateway`,
    session_type: 'normal', shard: [0, 1], private_channels: [], presences: [],
    relationships: [], guild_join_requests: [], user_settings: {}, geo_ordered_rtc_regions: [],
    application: { id: s.user, flags: (tokens.get(s.token).privileged & INTENT.MESSAGE_CONTENT) ? (1 << 19) : 0 }, auth: {},
  };
}

function onGatewayConnection(ws, req) {
  const url = new URL(req.url, 'http://x');
  const conn = { ws, n: ++connCounter, path: url.pathname, session: null, ready: false,
    lastHeartbeat: Date.now(), heartbeats: 0 };
  ws._trestle = conn;
  gwLog(conn, 'open', { query: url.search });
  if (url.searchParams.get('v') !== '10') {
    ws.close(4012, 'Invalid API version');
    return;
  }
  if ((url.searchParams.get('encoding') || 'json') !== 'json') {
    ws.close(4002, 'Decode error');
    return;
  }
  ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: HEARTBEAT_MS }, s: null, t: null }));
  const watchdog = setInterval(() => {
    if (Date.now() - conn.lastHeartbeat > HEARTBEAT_MS * 1.5 + 1000) {
      gwLog(conn, 'heartbeat timeout');
      ws.close(4009, 'Session timed out');
    }
  }, Math.max(100, HEARTBEAT_MS / 2));
  ws.on('close', (code) => {
    clearInterval(watchdog);
    gwLog(conn, 'close', { code });
    if (conn.session && conn.session.conn === conn) conn.session.conn = null;
  });
  ws.on('message', (raw, binary) => {
    let p;
    try {
      p = JSON.parse(raw.toString('utf8'));
    } catch (e) {
      ws.close(4002, 'Decode error');
      return;
    }
    if (typeof p !== 'object' || p === null || typeof p.op !== 'number') {
      ws.close(4002, 'Decode error');
      return;
    }
    onGatewayFrame(conn, p);
  });
}

function onGatewayFrame(conn, p) {
  const ws = conn.ws;
  switch (p.op) {
    case 1:
      conn.lastHeartbeat = Date.now();
      conn.heartbeats += 1;
      gwLog(conn, 'heartbeat', { d: p.d });
      if (acksEnabled) ws.send(JSON.stringify({ op: 11 }));
      return;
    case 2: {
      const d = p.d || {};
      gwLog(conn, 'identify', { intents: d.intents });
      if (conn.session) {
        ws.close(4005, 'Already authenticated');
        return;
      }
      const tok = tokens.get(d.token);
      if (!tok || !tok.bot) {
        ws.close(4004, 'Authentication failed.');
        return;
      }
      if (typeof d.intents !== 'number' || (d.intents & ~ALL_INTENTS)) {
        ws.close(4013, 'Invalid intent(s).');
        return;
      }
      if (d.intents & PRIVILEGED & ~tok.privileged) {
        ws.close(4014, 'Disallowed intent(s).');
        return;
      }
      if (!d.properties || typeof d.properties.os !== 'string') {
        ws.close(4002, 'Decode error');
        return;
      }
      const s = { id: crypto.randomBytes(16).toString('hex'), user: tok.user, token: d.token,
        intents: d.intents, seq: 0, events: [], conn, resumable: true };
      sessions.set(s.id, s);
      conn.session = s;
      conn.ready = true;
      sessionSend(s, 'READY', readyPayload(s, conn));
      if (s.intents & INTENT.GUILDS) sessionSend(s, 'GUILD_CREATE', guildObject(s.user));
      return;
    }
    case 6: {
      const d = p.d || {};
      gwLog(conn, 'resume', { seq: d.seq, session_id: d.session_id });
      const s = sessions.get(d.session_id);
      if (!s || !s.resumable || s.token !== d.token || typeof d.seq !== 'number' ||
          d.seq > s.seq || (s.events.length && d.seq < s.events[0].s - 1)) {
        if (!tokens.has(d.token)) {
          ws.close(4004, 'Authentication failed.');
          return;
        }
        // Discord answers a failed resume with op 9 d:false.
        setTimeout(() => ws.send(JSON.stringify({ op: 9, d: false })), 50);
        return;
      }
      if (s.conn && s.conn !== conn) {
        s.conn.session = null;
        s.conn.ws.terminate();
      }
      s.conn = conn;
      conn.session = s;
      for (const f of s.events) if (f.s > d.seq) ws.send(JSON.stringify(f));
      conn.ready = true;
      sessionSend(s, 'RESUMED', null);
      return;
    }
    case 3: // presence update
    case 4: // voice state update
    case 8: // request guild members
      if (!conn.session) ws.close(4003, 'Not authenticated.');
      return;
    default:
      ws.close(4001, 'Unknown opcode.');
  }
}

function liveConns(userId) {
  const out = [];
  for (const c of wss.clients) {
    const conn = c._trestle;
    if (conn && (!userId || (conn.session && conn.session.user === userId))) out.push(conn);
  }
  return out;
}

// ---- REST plumbing ----
const requestLog = [];
const injected = []; // {method, re, count, retry_after, global}
const buckets = new Map(); // key -> {limit, remaining, resetAt, hash}
const penalties = new Map(); // key -> until (ms) after a 429, to catch early retries
const violations = [];
let globalUntil = 0;

class ApiError extends Error {
  constructor(status, code, message, errors) {
    super(message);
    this.status = status;
    this.code = code;
    this.errors = errors;
  }
}
const E = {
  unauthorized: () => new ApiError(401, 0, '401: Unauthorized'),
  unknownChannel: () => new ApiError(404, 10003, 'Unknown Channel'),
  unknownMessage: () => new ApiError(404, 10008, 'Unknown Message'),
  unknownWebhook: () => new ApiError(404, 10015, 'Unknown Webhook'),
  unknownEmoji: () => new ApiError(400, 10014, 'Unknown Emoji'),
  missingAccess: () => new ApiError(403, 50001, 'Missing Access'),
  missingPerms: () => new ApiError(403, 50013, 'Missing Permissions'),
  otherAuthor: () => new ApiError(403, 50005, 'Cannot edit a message authored by another user'),
  empty: () => new ApiError(400, 50006, 'Cannot send an empty message'),
  invalidToken: () => new ApiError(401, 50027, 'Invalid Webhook Token'),
  form: (field, code, message) => new ApiError(400, 50035, 'Invalid Form Body',
    { [field]: { _errors: [{ code, message }] } }),
};

function send(res, status, body, headers = {}) {
  const data = body === undefined ? '' : JSON.stringify(body);
  const h = Object.assign({ 'Content-Type': 'application/json' }, headers);
  if (status === 204) delete h['Content-Type'];
  res.writeHead(status, h);
  res.end(status === 204 ? undefined : data);
}

// The route's bucket: its template with the major parameter kept (channel, webhook).
function routeKey(method, path) {
  let major = '';
  const t = path.replace(/\/(channels|webhooks|guilds)\/(\d+)(\/[^/]+)?/, (all, kind, id, tok) => {
    major = `${kind}/${id}`;
    return kind === 'webhooks' && tok ? `/${kind}/:id/:token` : `/${kind}/:id`;
  }).replace(/\/\d{15,21}/g, '/:id').replace(/\/reactions\/[^/]+/, '/reactions/:emoji');
  const template = `${method} ${t}`;
  return { key: `${template}|${major}`, hash: crypto.createHash('sha1').update(template)
    .digest('hex').slice(0, 16) };
}

function rateHeaders(b) {
  const now = Date.now();
  return {
    'X-RateLimit-Limit': String(b.limit), 'X-RateLimit-Remaining': String(b.remaining),
    'X-RateLimit-Reset': ((b.resetAt) / 1000).toFixed(3),
    'X-RateLimit-Reset-After': (Math.max(0, b.resetAt - now) / 1000).toFixed(3),
    'X-RateLimit-Bucket': b.hash,
  };
}

function rateLimit429(res, b, retryMs, global, scope) {
  const retry = retryMs / 1000;
  const h = Object.assign(b ? rateHeaders(b) : {}, {
    'Retry-After': String(Math.ceil(retry)), 'X-RateLimit-Scope': scope,
  });
  if (global) h['X-RateLimit-Global'] = 'true';
  send(res, 429, { message: 'You are being rate limited.', retry_after: retry, global }, h);
}

// Returns true when the request was answered with a 429.
function checkRateLimit(req, res, path, logEntry) {
  const now = Date.now();
  const { key, hash } = routeKey(req.method, path);
  logEntry.bucket = key;
  if (now < globalUntil) {
    violations.push({ what: 'request during global rate limit', path, method: req.method, at: now });
  }
  const pen = penalties.get(key);
  if (pen && now < pen) {
    violations.push({ what: 'retried before retry_after', path, method: req.method, at: now,
      early_ms: pen - now });
  }
  let b = buckets.get(key);
  if (!b || now >= b.resetAt) {
    b = { limit: RATE_LIMIT, remaining: RATE_LIMIT, resetAt: now + RATE_WINDOW_MS, hash };
    buckets.set(key, b);
  }
  for (let i = 0; i < injected.length; i++) {
    const inj = injected[i];
    if ((inj.method && inj.method !== req.method) || !inj.re.test(path)) continue;
    if (--inj.count <= 0) injected.splice(i, 1);
    const until = now + inj.retry_after_ms;
    if (inj.global) globalUntil = until;
    else penalties.set(key, until);
    logEntry.status = 429;
    logEntry.injected = true;
    b.remaining = 0;
    b.resetAt = Math.max(b.resetAt, until);
    rateLimit429(res, inj.global ? null : b, inj.retry_after_ms, !!inj.global,
      inj.global ? 'global' : 'user');
    return true;
  }
  if (b.remaining <= 0) {
    violations.push({ what: 'request with an exhausted bucket', path, method: req.method, at: now });
    logEntry.status = 429;
    penalties.set(key, b.resetAt);
    rateLimit429(res, b, b.resetAt - now, false, 'user');
    return true;
  }
  b.remaining -= 1;
  res._rate = rateHeaders(b);
  return false;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > 26 * 1024 * 1024) {
        reject(new ApiError(413, 40005, 'Request entity too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

// JSON or multipart/form-data with payload_json and files[n] parts.
function parseBody(req, buf) {
  const ct = req.headers['content-type'] || '';
  if (!buf.length) return {};
  if (ct.startsWith('multipart/form-data')) {
    const m = /boundary=("?)([^";]+)\1/.exec(ct);
    if (!m) throw E.form('payload_json', 'BASE_TYPE_BAD', 'bad multipart');
    const parts = buf.toString('latin1').split('--' + m[2]);
    let payload = {};
    const files = [];
    for (const part of parts) {
      const i = part.indexOf('\r\n\r\n');
      if (i < 0) continue;
      const head = part.slice(0, i);
      const data = Buffer.from(part.slice(i + 4).replace(/\r\n$/, ''), 'latin1');
      const name = /name="([^"]*)"/.exec(head);
      const fname = /filename="([^"]*)"/.exec(head);
      const type = /Content-Type:\s*([^\r\n]+)/i.exec(head);
      if (!name) continue;
      if (name[1] === 'payload_json') payload = JSON.parse(data.toString('utf8'));
      else if (fname) files.push({ field: name[1], filename: fname[1], data,
        content_type: type ? type[1] : 'application/octet-stream' });
    }
    payload._files = files;
    return payload;
  }
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (e) {
    throw new ApiError(400, 50109, 'The request body contains invalid JSON.');
  }
}

const uploads = new Map(); // id -> {data, content_type}
function attachUploads(body, base) {
  if (!body._files || !body._files.length) return;
  body.attachments = body._files.map((f) => {
    const id = snowflake();
    uploads.set(id, f);
    return { url: `${base}/attachments/${id}/${encodeURIComponent(f.filename)}`,
      filename: f.filename, size: f.data.length, content_type: f.content_type };
  });
}

function auth(req) {
  const h = req.headers.authorization || '';
  const m = /^Bot (.+)$/.exec(h);
  const tok = tokens.get(m ? m[1] : h);
  if (!tok || (m && !tok.bot) || (!m && tok.bot)) throw E.unauthorized();
  return tok;
}

function channelFor(tok, cid, perm) {
  const ch = channels.get(cid);
  if (!ch) throw E.unknownChannel();
  const deny = denied.get(ch.type === 11 ? ch.parent_id : cid) || 0n;
  if (tok && tok.bot) {
    if (deny & PERM.VIEW_CHANNEL) throw E.missingAccess();
    if (perm && (deny & perm)) throw E.missingPerms();
  }
  return ch;
}

function validateContent(body, needSomething) {
  if (body.content !== undefined && body.content !== null && typeof body.content !== 'string')
    throw E.form('content', 'BASE_TYPE_STRING', 'Must be a string.');
  if (typeof body.content === 'string' && [...body.content].length > 2000)
    throw E.form('content', 'BASE_TYPE_MAX_LENGTH', 'Must be 2000 or fewer in length.');
  if (needSomething && !body.content && !(body.embeds && body.embeds.length) &&
      !(body._files && body._files.length) && !body.sticker_ids && !body.poll)
    throw E.empty();
}

function gatewayMessage(m) {
  const o = publicMessage(m);
  o.guild_id = GUILD_ID;
  if (!m.webhook_id) o.member = member(m.author.id);
  return o;
}

function createMessage(tok, cid, body, base) {
  const ch = channelFor(tok, cid, ch0IsThread(cid) ? PERM.SEND_MESSAGES_IN_THREADS
    : PERM.SEND_MESSAGES);
  attachUploads(body, base);
  validateContent(body, true);
  if (body.message_reference && body.message_reference.message_id) {
    const rc = body.message_reference.channel_id || cid;
    if (!findMessage(rc, body.message_reference.message_id) &&
        body.message_reference.fail_if_not_exists !== false)
      throw E.form('message_reference', 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', 'Unknown message');
  }
  const m = newMessage(ch.id, users.get(tok.user), body);
  dispatchAll('MESSAGE_CREATE', gatewayMessage(m), INTENT.GUILD_MESSAGES, true);
  return m;
}
function ch0IsThread(cid) {
  const c = channels.get(cid);
  return c && c.type === 11;
}

function editMessage(m, body, base) {
  attachUploads(body, base);
  validateContent(body, false);
  if (body.content !== undefined) {
    m.content = body.content || '';
    Object.assign(m, parseMentions(m.content, body.allowed_mentions, !!m.webhook_id));
  }
  if (body.embeds !== undefined) m.embeds = body.embeds || [];
  if (body.attachments && body.attachments.some((a) => a.url)) m.attachments = body.attachments;
  m.edited_timestamp = iso();
  dispatchAll('MESSAGE_UPDATE', gatewayMessage(m), INTENT.GUILD_MESSAGES, true);
  return m;
}

function deleteMessage(m) {
  m._deleted = true;
  const arr = chanMessages(m.channel_id);
  arr.splice(arr.indexOf(m), 1);
  dispatchAll('MESSAGE_DELETE', { id: m.id, channel_id: m.channel_id, guild_id: GUILD_ID },
    INTENT.GUILD_MESSAGES);
}

function decodeEmoji(s) {
  const e = decodeURIComponent(s);
  if (/^[\w-]+:\d+$/.test(e)) return e;
  if (!e || /[\s<>]/.test(e) || /^[\w:-]+$/.test(e)) throw E.unknownEmoji();
  return e;
}

function react(tok, m, key, add) {
  const set = m._reactions.get(key) || new Set();
  const had = set.has(tok.user);
  if (add) set.add(tok.user);
  else set.delete(tok.user);
  if (set.size) m._reactions.set(key, set);
  else m._reactions.delete(key);
  if (had === add) return;
  const d = { user_id: tok.user, channel_id: m.channel_id, message_id: m.id, guild_id: GUILD_ID,
    emoji: emojiObject(key), burst: false, type: 0 };
  if (add) {
    d.member = Object.assign(member(tok.user), { user: users.get(tok.user) });
    d.message_author_id = m.author.id;
    d.burst_colors = [];
  }
  dispatchAll(add ? 'MESSAGE_REACTION_ADD' : 'MESSAGE_REACTION_REMOVE', d,
    INTENT.GUILD_MESSAGE_REACTIONS);
}

function webhookPublic(w, withToken) {
  const o = { application_id: null, avatar: w.avatar, channel_id: w.channel_id,
    guild_id: GUILD_ID, id: w.id, name: w.name, type: 1, user: users.get(w.creator) };
  if (withToken) {
    o.token = w.token;
    o.url = `https://discord.com/api/webhooks/${w.id}/${w.token}`;
  }
  return o;
}

function findWebhook(id, token) {
  const w = webhooks.get(id);
  if (!w) throw E.unknownWebhook();
  if (token !== undefined && w.token !== token) throw E.invalidToken();
  return w;
}

function validUsername(u) {
  if (u === undefined || u === null) return;
  if (typeof u !== 'string' || u.length < 1 || u.length > 80)
    throw E.form('username', 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 80 in length.');
  if (/[@#:]|```|discord|clyde/i.test(u) || /^(everyone|here)$/i.test(u))
    throw E.form('username', 'USERNAME_INVALID_CONTAINS', 'Username cannot contain that');
}

function executeWebhook(w, body, q, base) {
  let cid = w.channel_id;
  const tid = q.get('thread_id');
  if (tid) {
    const t = channels.get(tid);
    if (!t || t.type !== 11 || t.parent_id !== w.channel_id) throw E.unknownChannel();
    cid = tid;
  }
  validUsername(body.username);
  attachUploads(body, base);
  validateContent(body, true);
  const author = { id: w.id, username: body.username || w.name, avatar: null,
    discriminator: '0000', public_flags: 0, flags: 0, bot: true, global_name: null };
  const extra = { webhook_id: w.id, _avatar_url: body.avatar_url || null };
  if (body.message_reference) delete body.message_reference; // webhooks cannot reply
  const m = newMessage(cid, author, body, extra);
  Object.defineProperty(m, '_avatar_url', { value: body.avatar_url || null, enumerable: false });
  if (tid) m.position = m.position || 0;
  dispatchAll('MESSAGE_CREATE', gatewayMessage(m), INTENT.GUILD_MESSAGES, true);
  return m;
}

function webhookMessage(w, mid, q) {
  const cid = q.get('thread_id') || w.channel_id;
  const m = findMessage(cid, mid);
  if (!m || m.webhook_id !== w.id) throw E.unknownMessage();
  return m;
}

// Messages list: newest first, limit 1..100, before/after/around.
function listMessages(cid, q) {
  let limit = Number(q.get('limit') || '50');
  if (!(limit >= 1 && limit <= 100)) throw E.form('limit', 'NUMBER_TYPE_MAX', 'bad limit');
  const all = chanMessages(cid).slice(); // oldest first
  const big = (s) => BigInt(s);
  let out;
  if (q.get('after')) {
    const a = big(q.get('after'));
    out = all.filter((m) => big(m.id) > a).slice(0, limit).reverse();
  } else if (q.get('before')) {
    const b = big(q.get('before'));
    out = all.filter((m) => big(m.id) < b).slice(-limit).reverse();
  } else {
    out = all.slice(-limit).reverse();
  }
  return out.map(publicMessage);
}

async function handleApi(req, res, url, path, logEntry) {
  const q = url.searchParams;
  const base = `http://${req.headers.host}`;
  const method = req.method;
  let m;
  // Webhook routes that take a token need no Authorization.
  if ((m = /^\/webhooks\/(\d+)\/([^/]+)(\/messages\/(\d+|@original))?$/.exec(path))) {
    if (checkRateLimit(req, res, path, logEntry)) return;
    const w = findWebhook(m[1], m[2]);
    const body = parseBody(req, await readBody(req));
    if (!m[3]) {
      if (method === 'POST') {
        const msg = executeWebhook(w, body, q, base);
        return q.get('wait') === 'true' ? send(res, 200, publicMessage(msg), res._rate)
          : send(res, 204, undefined, res._rate);
      }
      if (method === 'GET') return send(res, 200, webhookPublic(w, false), res._rate);
      if (method === 'DELETE') {
        webhooks.delete(w.id);
        return send(res, 204, undefined, res._rate);
      }
    } else {
      const msg = webhookMessage(w, m[4], q);
      if (method === 'GET') return send(res, 200, publicMessage(msg), res._rate);
      if (method === 'PATCH') return send(res, 200, publicMessage(editMessage(msg, body, base)),
        res._rate);
      if (method === 'DELETE') {
        deleteMessage(msg);
        return send(res, 204, undefined, res._rate);
      }
    }
    throw new ApiError(405, 0, '405: Method Not Allowed');
  }
  const tok = auth(req);
  if (checkRateLimit(req, res, path, logEntry)) return;
  const body = ['POST', 'PATCH', 'PUT'].includes(method) ? parseBody(req, await readBody(req))
    : {};
  const ok = (status, b) => send(res, status, b, res._rate);
  if (path === '/gateway/bot' && method === 'GET') {
    if (!tok.bot) throw E.unauthorized();
    return ok(200, { url: `ws://${HOST}:${server.address().port}`, shards: 1,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 14400000,
        max_concurrency: 1 } });
  }
  if (path === '/applications/@me' && method === 'GET') {
    if (!tok.bot) throw E.unauthorized();
    const u = users.get(tok.user);
    // Application flags: GATEWAY_MESSAGE_CONTENT_LIMITED (1 << 19) when the portal switch is on.
    return ok(200, { id: u.id, name: u.username, icon: null, description: '', type: null,
      bot: u, bot_public: false, bot_require_code_grant: false, verify_key: 'k', summary: '',
      flags: (tok.privileged & INTENT.MESSAGE_CONTENT) ? (1 << 19) : 0, tags: [] });
  }
  if (path === '/gateway' && method === 'GET')
    return ok(200, { url: `ws://${HOST}:${server.address().port}` });
  if (path === '/users/@me' && method === 'GET')
    return ok(200, Object.assign({ verified: true, mfa_enabled: false, locale: 'en-US',
      email: null }, users.get(tok.user)));
  if ((m = /^\/guilds\/(\d+)\/channels$/.exec(path)) && method === 'GET') {
    if (m[1] !== GUILD_ID) throw new ApiError(404, 10004, 'Unknown Guild');
    return ok(200, [...channels.values()].filter((c) => c.type === 0));
  }
  if ((m = /^\/guilds\/(\d+)\/webhooks$/.exec(path)) && method === 'GET')
    return ok(200, [...webhooks.values()].map((w) => webhookPublic(w, w.creator === tok.user)));
  if ((m = /^\/channels\/(\d+)$/.exec(path)) && method === 'GET')
    return ok(200, channelFor(tok, m[1]));
  if ((m = /^\/channels\/(\d+)\/webhooks$/.exec(path))) {
    const ch = channelFor(tok, m[1], PERM.MANAGE_WEBHOOKS);
    if (ch.type !== 0) throw new ApiError(400, 50024, 'Cannot execute action on this channel type');
    if (method === 'GET')
      return ok(200, [...webhooks.values()].filter((w) => w.channel_id === ch.id)
        .map((w) => webhookPublic(w, w.creator === tok.user)));
    if (method === 'POST') {
      if (typeof body.name !== 'string' || body.name.length < 1 || body.name.length > 80)
        throw E.form('name', 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 80 in length.');
      if (/clyde|discord/i.test(body.name))
        throw E.form('name', 'USERNAME_INVALID_CONTAINS', 'Username cannot contain "discord"');
      if ([...webhooks.values()].filter((w) => w.channel_id === ch.id).length >= 15)
        throw new ApiError(400, 30007, 'Maximum number of webhooks reached (15)');
      const w = { id: snowflake(), token: crypto.randomBytes(30).toString('base64url'),
        name: body.name, avatar: null, channel_id: ch.id, creator: tok.user };
      webhooks.set(w.id, w);
      return ok(200, webhookPublic(w, true));
    }
  }
  if ((m = /^\/channels\/(\d+)\/messages$/.exec(path))) {
    if (method === 'GET') {
      channelFor(tok, m[1], PERM.READ_MESSAGE_HISTORY);
      return ok(200, listMessages(m[1], q));
    }
    if (method === 'POST') return ok(200, publicMessage(createMessage(tok, m[1], body, base)));
  }
  if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/.exec(path)) && method === 'POST') {
    const parent = channelFor(tok, m[1], PERM.CREATE_PUBLIC_THREADS);
    const root = findMessage(parent.id, m[2]);
    if (!root) throw E.unknownMessage();
    if (channels.has(root.id)) throw new ApiError(400, 160004, 'A thread has already been created for this message');
    const t = { id: root.id, type: 11, guild_id: GUILD_ID, parent_id: parent.id,
      owner_id: tok.user, name: body.name || 'thread', last_message_id: null,
      rate_limit_per_user: 0, message_count: 0, member_count: 1, total_message_sent: 0,
      flags: 0, thread_metadata: { archived: false, auto_archive_duration: 1440,
        archive_timestamp: iso(), locked: false, create_timestamp: iso() } };
    channels.set(t.id, t);
    root.thread = t;
    dispatchAll('THREAD_CREATE', Object.assign({ newly_created: true }, t), INTENT.GUILDS);
    return ok(201, t);
  }
  if ((m = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path))) {
    channelFor(tok, m[1]);
    const msg = findMessage(m[1], m[2]);
    if (!msg) throw E.unknownMessage();
    if (method === 'GET') return ok(200, publicMessage(msg));
    if (method === 'PATCH') {
      if (msg.author.id !== tok.user) throw E.otherAuthor();
      return ok(200, publicMessage(editMessage(msg, body, base)));
    }
    if (method === 'DELETE') {
      if (msg.author.id !== tok.user) channelFor(tok, m[1], PERM.MANAGE_MESSAGES);
      deleteMessage(msg);
      return ok(204);
    }
  }
  if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/(@me|\d+)$/.exec(path))) {
    channelFor(tok, m[1], PERM.ADD_REACTIONS);
    const msg = findMessage(m[1], m[2]);
    if (!msg) throw E.unknownMessage();
    const key = decodeEmoji(m[3]);
    if (method === 'PUT' && m[4] === '@me') {
      react(tok, msg, key, true);
      return ok(204);
    }
    if (method === 'DELETE') {
      const who = m[4] === '@me' ? tok : { user: m[4] };
      react(who, msg, key, false);
      return ok(204);
    }
  }
  throw new ApiError(404, 0, '404: Not Found');
}

// ---- control API for tests ----
async function handleControl(req, res, url, path) {
  const body = req.method === 'POST' ? JSON.parse((await readBody(req)).toString() || '{}') : {};
  let m;
  if ((m = /^\/_test\/channels\/(\d+)\/messages$/.exec(path))) {
    // As a human sees the channel: webhook messages show their username and avatar.
    return send(res, 200, chanMessages(m[1]).map((x) => Object.assign(publicMessage(x),
      { avatar_url: x._avatar_url || null })));
  }
  if (path === '/_test/gateway/drop') {
    const conns = liveConns(body.user);
    for (const c of conns) {
      gwLog(c, 'dropped by test');
      c.ws.terminate();
    }
    return send(res, 200, { dropped: conns.length });
  }
  if (path === '/_test/gateway/reconnect') {
    const conns = liveConns(body.user);
    for (const c of conns) c.ws.send(JSON.stringify({ op: 7, d: null }));
    return send(res, 200, { sent: conns.length });
  }
  if (path === '/_test/gateway/invalidate') {
    const conns = liveConns(body.user);
    for (const c of conns) {
      if (c.session && !body.resumable) {
        c.session.resumable = false;
        sessions.delete(c.session.id);
      }
      c.ws.send(JSON.stringify({ op: 9, d: !!body.resumable }));
    }
    return send(res, 200, { sent: conns.length });
  }
  if (path === '/_test/gateway/forget') {
    // Every session becomes unresumable (as after a long outage): the next resume gets op 9.
    let n = 0;
    for (const s of sessions.values()) {
      if (!body.user || s.user === body.user) {
        s.resumable = false;
        n++;
      }
    }
    for (const [id, s] of sessions) if (!s.resumable && !s.conn) sessions.delete(id);
    return send(res, 200, { forgotten: n });
  }
  if (path === '/_test/gateway/acks') {
    acksEnabled = !!body.enabled;
    return send(res, 200, { enabled: acksEnabled });
  }
  if (path === '/_test/gateway/log') return send(res, 200, { log: gatewayLog });
  if (path === '/_test/gateway/sessions') {
    return send(res, 200, { sessions: [...sessions.values()].map((s) => ({ id: s.id,
      user: s.user, seq: s.seq, live: !!s.conn, resumable: s.resumable })) });
  }
  if (path === '/_test/ratelimit') {
    injected.push({ method: body.method || null, re: new RegExp(body.path),
      count: body.count || 1, retry_after_ms: body.retry_after_ms || 1000,
      global: !!body.global });
    return send(res, 200, { ok: true });
  }
  if (path === '/_test/requests')
    return send(res, 200, { requests: requestLog, violations });
  if (path === '/_test/webhooks')
    return send(res, 200, [...webhooks.values()].map((w) => webhookPublic(w, true)));
  if (path === '/_test/deny') {
    let bits = 0n;
    for (const p of body.perms || []) bits |= PERM[p];
    denied.set(body.channel, bits);
    return send(res, 200, { ok: true });
  }
  if (path === '/_test/info') {
    return send(res, 200, { guild_id: GUILD_ID, channels: [...channels.values()],
      users: [...users.values()], roles });
  }
  return send(res, 404, { message: 'unknown control route' });
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://x');
  let path = url.pathname;
  if (path.startsWith('/_test/')) {
    try {
      return await handleControl(req, res, url, path);
    } catch (e) {
      return send(res, 500, { message: String(e) });
    }
  }
  if ((path.startsWith('/attachments/')) && req.method === 'GET') {
    const f = uploads.get(path.split('/')[2]);
    if (!f) return send(res, 404, { message: '404: Not Found', code: 0 });
    res.writeHead(200, { 'Content-Type': f.content_type });
    return res.end(f.data);
  }
  const logEntry = { method: req.method, path, query: url.search, at: Date.now(), status: 0 };
  requestLog.push(logEntry);
  if (!path.startsWith('/api/v10/')) {
    logEntry.status = 404;
    return send(res, 404, { message: '404: Not Found', code: 0 });
  }
  path = path.slice('/api/v10'.length);
  try {
    await handleApi(req, res, url, path, logEntry);
    if (!logEntry.status) logEntry.status = res.statusCode;
  } catch (e) {
    if (!(e instanceof ApiError)) {
      console.error(e);
      e = new ApiError(500, 0, '500: Internal Server Error');
    }
    logEntry.status = e.status;
    logEntry.code = e.code;
    const b = { message: e.message, code: e.code };
    if (e.errors) b.errors = e.errors;
    send(res, e.status, b, res._rate || {});
  }
});

server.on('upgrade', (req, socket, head) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    const origSend = ws.send.bind(ws);
    ws.send = (d) => {
      if (ws.readyState === ws.OPEN) origSend(d);
    };
    onGatewayConnection(ws, req);
  });
});

server.listen(PORT, HOST, () => {
  process.stdout.write(`LISTENING ${JSON.stringify({ port: server.address().port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
