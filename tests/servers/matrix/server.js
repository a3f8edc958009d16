// SPDX-License-Identifier: AGPL-3.0-or-later
// A Matrix homeserver test double for Trestle's tests: the client-server endpoints a bridge and a
// human client use, the application-service push (transactions retried with the same txnId), and
// a small control API under /_test/ (inject 429s, read a room's timeline, replay a transaction).
// Shapes and error codes follow ../../../../shared/specs/matrix/ (client-server and
// application-service OpenAPI, event schemas). Everything lives in memory.
//
//   node server.js --port 0 --server-name test.local [--config cfg.json]
//   cfg.json: {"users":[{"localpart":"alice","password":"pw"}],
//              "appservice":{"id":"trestle","url":"http://127.0.0.1:9","as_token":"..",
//                            "hs_token":"..","sender_localpart":"_trestle_bot",
//                            "namespaces":{"users":[{"regex":"@_trestle_.*","exclusive":true}]}}}
// Prints "LISTENING <port>" on stdout when ready.

import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const PORT = Number(arg('--port', '0'));
const SERVER_NAME = arg('--server-name', 'test.local');
const CONFIG = arg('--config', null) ? JSON.parse(fs.readFileSync(arg('--config'), 'utf8')) : {};
const MAX_EVENT = 65536;
const MAX_UPLOAD = 10 * 1024 * 1024;
const MAX_BODY = MAX_UPLOAD + 1024;

// ---- state ----
const users = new Map(); // user_id -> {password, displayname, avatar_url, appservice}
const tokens = new Map(); // access token -> {user_id, device_id}
const rooms = new Map(); // room_id -> room
const aliases = new Map(); // #alias:server -> room_id
const filters = new Map(); // filter id -> filter object
const media = new Map(); // media id -> {type, data, filename}
const events = []; // every event in stream order: {pos, ev, room_id}
const eventsById = new Map();
const txns = new Map(); // scope\x1ftxnId -> event_id
let streamPos = 0;
let waiters = [];
const rateLimits = []; // {method, path (regex), count, retry_after_ms, header}
const requestLog = []; // {method, path, user_id, status}

let appservice = null;
if (CONFIG.appservice) {
  const reg = CONFIG.appservice;
  appservice = {
    reg,
    userRegexes: ((reg.namespaces || {}).users || []).map((n) => new RegExp('^' + n.regex + '$')),
    roomRegexes: ((reg.namespaces || {}).rooms || []).map((n) => new RegExp('^' + n.regex + '$')),
    aliasRegexes: ((reg.namespaces || {}).aliases || []).map((n) => new RegExp('^' + n.regex + '$')),
    queue: [], // events not yet in a transaction
    inflight: null, // {txnId, events}
    nextTxn: 1,
    retryMs: 50,
    log: [], // {txnId, n, status}
    sent: new Map(), // txnId -> events (for /_test/as/replay)
    timer: null,
  };
  const bot = `@${reg.sender_localpart}:${SERVER_NAME}`;
  users.set(bot, { displayname: reg.sender_localpart, avatar_url: null, appservice: true });
}
for (const u of CONFIG.users || []) {
  users.set(`@${u.localpart}:${SERVER_NAME}`, {
    password: u.password, displayname: u.displayname || u.localpart, avatar_url: null,
  });
}

function randomId(n = 18) {
  return crypto.randomBytes(n).toString('base64url');
}

// ---- HTTP helpers ----
class MatrixError extends Error {
  constructor(status, errcode, error, extra = {}, headers = {}) {
    super(error);
    this.status = status;
    this.body = { errcode, error, ...extra };
    this.headers = headers;
  }
}
function send(res, status, body, headers = {}) {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': data.length,
    ...headers });
  res.end(data);
}
function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let len = 0;
    req.on('data', (c) => {
      len += c.length;
      if (len > MAX_BODY) {
        reject(new MatrixError(413, 'M_TOO_LARGE', 'Request too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
function jsonBody(buf) {
  if (buf.length === 0) return {};
  try {
    const v = JSON.parse(buf.toString('utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v))
      throw new Error('not an object');
    return v;
  } catch {
    throw new MatrixError(400, 'M_NOT_JSON', 'Content not JSON.');
  }
}

// ---- authentication (client-server "Using access tokens"; appservice "Identity assertion") ----
function bearer(req, url) {
  const h = req.headers.authorization;
  if (h && h.startsWith('Bearer ')) return h.slice(7);
  return url.searchParams.get('access_token');
}
function isAsUser(user_id) {
  if (!appservice) return false;
  if (user_id === `@${appservice.reg.sender_localpart}:${SERVER_NAME}`) return true;
  return appservice.userRegexes.some((r) => r.test(user_id));
}
function auth(req, url, { optional = false } = {}) {
  const tok = bearer(req, url);
  if (!tok) {
    if (optional) return null;
    throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access token');
  }
  if (appservice && tok === appservice.reg.as_token) {
    const bot = `@${appservice.reg.sender_localpart}:${SERVER_NAME}`;
    const uid = url.searchParams.get('user_id') || bot;
    if (!isAsUser(uid))
      throw new MatrixError(403, 'M_EXCLUSIVE',
        'Application service cannot masquerade as this user');
    if (!users.has(uid))
      throw new MatrixError(403, 'M_FORBIDDEN',
        'Application service has not registered this user');
    return { user_id: uid, device_id: 'AS', appservice: true, scope: `as:${uid}`, token: tok };
  }
  const t = tokens.get(tok);
  if (!t) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unknown access token',
    { soft_logout: false });
  return { ...t, scope: `tok:${tok}`, token: tok };
}

// ---- rooms and events ----
function newRoom(room_id) {
  const r = { room_id, state: new Map(), timeline: [] };
  rooms.set(room_id, r);
  return r;
}
function membership(room, user_id) {
  const m = room.state.get(`m.room.member\x1f${user_id}`);
  return m ? m.content.membership : 'leave';
}
function members(room, which = 'join') {
  const out = [];
  for (const [k, ev] of room.state)
    if (k.startsWith('m.room.member\x1f') && ev.content.membership === which) out.push(ev.state_key);
  return out;
}
function getRoom(room_id) {
  const r = rooms.get(room_id);
  if (!r) throw new MatrixError(404, 'M_NOT_FOUND', 'Unknown room');
  return r;
}
function requireJoined(room, user_id) {
  if (membership(room, user_id) !== 'join')
    throw new MatrixError(403, 'M_FORBIDDEN', `User ${user_id} not in room ${room.room_id}`);
}

// Appends an event to a room; state events replace the current state. Returns the event.
function emit(room, fields, { txn = null } = {}) {
  const ev = {
    type: fields.type,
    sender: fields.sender,
    content: fields.content || {},
    event_id: '$' + randomId(32),
    origin_server_ts: Date.now(),
    room_id: room.room_id,
    unsigned: {},
  };
  if (fields.state_key !== undefined) {
    ev.state_key = fields.state_key;
    const prev = room.state.get(`${ev.type}\x1f${ev.state_key}`);
    if (prev) {
      ev.unsigned.prev_content = prev.content;
      ev.unsigned.replaces_state = prev.event_id;
    }
    room.state.set(`${ev.type}\x1f${ev.state_key}`, ev);
  }
  if (fields.redacts) ev.redacts = fields.redacts;
  if (JSON.stringify(ev).length > MAX_EVENT)
    throw new MatrixError(413, 'M_TOO_LARGE', 'Event too large');
  const rec = { pos: ++streamPos, ev, room_id: room.room_id, txn };
  room.timeline.push(rec);
  events.push(rec);
  eventsById.set(ev.event_id, rec);
  asEnqueue(room, ev);
  wake();
  return ev;
}

// Redaction algorithm (room versions 1-10): keep only the keys the spec preserves.
function prune(ev) {
  const keepContent = {
    'm.room.member': ['membership'], 'm.room.create': ['creator'],
    'm.room.join_rules': ['join_rule'], 'm.room.history_visibility': ['history_visibility'],
    'm.room.power_levels': ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default',
      'users', 'users_default'],
  }[ev.type] || [];
  const content = {};
  for (const k of keepContent) if (k in ev.content) content[k] = ev.content[k];
  ev.content = content;
}

function createRoom(creator, body) {
  const room_id = '!' + randomId(12) + ':' + SERVER_NAME;
  const room = newRoom(room_id);
  const preset = body.preset || (body.visibility === 'public' ? 'public_chat' : 'private_chat');
  emit(room, { type: 'm.room.create', sender: creator, state_key: '',
    content: { creator, room_version: '10', ...(body.creation_content || {}) } });
  const prof = users.get(creator) || {};
  emit(room, { type: 'm.room.member', sender: creator, state_key: creator,
    content: { membership: 'join', displayname: prof.displayname, avatar_url: prof.avatar_url || undefined } });
  emit(room, { type: 'm.room.power_levels', sender: creator, state_key: '',
    content: { users: { [creator]: 100 }, users_default: 0, events_default: 0, state_default: 50,
      ban: 50, kick: 50, redact: 50, invite: 0, events: {}, notifications: { room: 50 } } });
  emit(room, { type: 'm.room.join_rules', sender: creator, state_key: '',
    content: { join_rule: preset === 'public_chat' ? 'public' : 'invite' } });
  emit(room, { type: 'm.room.history_visibility', sender: creator, state_key: '',
    content: { history_visibility: 'shared' } });
  if (body.room_alias_name) {
    const alias = `#${body.room_alias_name}:${SERVER_NAME}`;
    if (aliases.has(alias)) throw new MatrixError(400, 'M_ROOM_IN_USE', 'Room alias already taken');
    aliases.set(alias, room_id);
    emit(room, { type: 'm.room.canonical_alias', sender: creator, state_key: '',
      content: { alias } });
  }
  for (const st of body.initial_state || [])
    emit(room, { type: st.type, sender: creator, state_key: st.state_key || '', content: st.content });
  if (body.name) emit(room, { type: 'm.room.name', sender: creator, state_key: '', content: { name: body.name } });
  if (body.topic) emit(room, { type: 'm.room.topic', sender: creator, state_key: '', content: { topic: body.topic } });
  for (const u of body.invite || [])
    emit(room, { type: 'm.room.member', sender: creator, state_key: u, content: { membership: 'invite' } });
  return room_id;
}

function join(room, user_id) {
  const cur = membership(room, user_id);
  if (cur === 'join') return;
  if (cur === 'ban') throw new MatrixError(403, 'M_FORBIDDEN', 'You are banned from this room');
  const jr = room.state.get('m.room.join_rules\x1f');
  if (cur !== 'invite' && (!jr || jr.content.join_rule !== 'public'))
    throw new MatrixError(403, 'M_FORBIDDEN', 'You are not invited to this room.');
  const prof = users.get(user_id) || {};
  const content = { membership: 'join' };
  if (prof.displayname) content.displayname = prof.displayname;
  if (prof.avatar_url) content.avatar_url = prof.avatar_url;
  emit(room, { type: 'm.room.member', sender: user_id, state_key: user_id, content });
}

// ---- appservice push (application-service API "Pushing events") ----
function asInterested(room, ev) {
  if (!appservice) return false;
  if (isAsUser(ev.sender)) return true;
  if (ev.type === 'm.room.member' && isAsUser(ev.state_key)) return true;
  if (appservice.roomRegexes.some((r) => r.test(room.room_id))) return true;
  for (const m of [...members(room, 'join'), ...members(room, 'invite')])
    if (isAsUser(m)) return true;
  return false;
}
function asEnqueue(room, ev) {
  if (!asInterested(room, ev)) return;
  appservice.queue.push(ev);
  asKick(0);
}
function asKick(delay) {
  if (!appservice || appservice.inflight || appservice.timer || appservice.paused) return;
  if (!appservice.queue.length) return;
  appservice.timer = setTimeout(asFlush, delay);
}
function asPost(path, method, body, timeoutMs = 10000) {
  return new Promise((resolve) => {
    const u = new URL(appservice.reg.url.replace(/\/$/, '') + path);
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname, method,
      headers: { 'Content-Type': 'application/json', 'Content-Length': data.length,
        Authorization: `Bearer ${appservice.reg.hs_token}` }, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => { req.destroy(); resolve({ status: 0, error: 'timeout' }); });
    req.on('error', (e) => resolve({ status: 0, error: e.code || String(e) }));
    req.end(data);
  });
}
async function asFlush() {
  appservice.timer = null;
  if (!appservice.inflight) {
    const evs = appservice.queue.splice(0, 100);
    if (!evs.length) return;
    appservice.inflight = { txnId: String(appservice.nextTxn++), events: evs };
    appservice.sent.set(appservice.inflight.txnId, evs);
  }
  const t = appservice.inflight;
  const r = await asPost(`/_matrix/app/v1/transactions/${encodeURIComponent(t.txnId)}`, 'PUT',
    { events: t.events });
  appservice.log.push({ txnId: t.txnId, n: t.events.length, status: r.status,
    event_ids: t.events.map((e) => e.event_id) });
  if (r.status === 200) {
    appservice.inflight = null;
    appservice.retryMs = 50;
    asKick(0);
  } else {
    // Retried with the SAME txnId and events, with backoff (as Synapse does).
    const d = appservice.retryMs;
    appservice.retryMs = Math.min(appservice.retryMs * 2, 1000);
    appservice.timer = setTimeout(asFlush, d);
  }
}

// ---- sync ----
function wake() {
  const w = waiters;
  waiters = [];
  for (const f of w) f();
}
function stripped(ev) {
  return { type: ev.type, state_key: ev.state_key, content: ev.content, sender: ev.sender };
}
function clientEvent(rec, who, withRoom = false) {
  const ev = { ...rec.ev, unsigned: { ...rec.ev.unsigned, age: Date.now() - rec.ev.origin_server_ts } };
  if (rec.txn && rec.txn.scope === who.scope) ev.unsigned.transaction_id = rec.txn.txnId;
  if (!withRoom) delete ev.room_id;
  return ev;
}
function parseFilter(f) {
  if (!f) return {};
  if (f.startsWith('{')) {
    try { return JSON.parse(f); } catch { throw new MatrixError(400, 'M_INVALID_PARAM', 'Bad filter'); }
  }
  const stored = filters.get(f);
  if (!stored) throw new MatrixError(400, 'M_INVALID_PARAM', 'Unknown filter');
  return stored;
}
function typeOk(list, t) {
  if (!list) return true;
  return list.some((p) => p === t || (p.endsWith('*') && t.startsWith(p.slice(0, -1))));
}
function buildSync(who, since, filter) {
  const roomFilter = filter.room || {};
  const limit = (roomFilter.timeline && roomFilter.timeline.limit) || 20;
  const tlTypes = roomFilter.timeline && roomFilter.timeline.types;
  const out = { next_batch: `s${streamPos}`, rooms: { join: {}, invite: {}, leave: {} },
    presence: { events: [] }, account_data: { events: [] }, to_device: { events: [] },
    device_lists: { changed: [], left: [] }, device_one_time_keys_count: {} };
  let any = false;
  for (const room of rooms.values()) {
    if (roomFilter.rooms && !roomFilter.rooms.includes(room.room_id)) continue;
    const m = membership(room, who.user_id);
    const memRec = room.state.get(`m.room.member\x1f${who.user_id}`);
    if (!memRec) continue;
    const memPos = eventsById.get(memRec.event_id).pos;
    if (m === 'invite') {
      if (since !== null && memPos <= since) continue;
      const st = [...room.state.values()].filter((e) =>
        ['m.room.create', 'm.room.join_rules', 'm.room.name', 'm.room.avatar',
          'm.room.canonical_alias', 'm.room.encryption'].includes(e.type) || e === memRec);
      out.rooms.invite[room.room_id] = { invite_state: { events: st.map(stripped) } };
      any = true;
      continue;
    }
    let recs;
    const section = m === 'join' ? 'join' : 'leave';
    if (section === 'leave') {
      if (since === null || memPos <= since) continue;
      recs = room.timeline.filter((r) => r.pos > since && r.pos <= memPos);
    } else {
      recs = room.timeline.filter((r) => since === null || r.pos > since);
    }
    if (since !== null && !recs.length) continue;
    const newlyJoined = since !== null && memPos > since && section === 'join';
    let limited = false;
    let tl = recs.filter((r) => typeOk(tlTypes, r.ev.type));
    if (tl.length > limit) { tl = tl.slice(-limit); limited = true; }
    const firstPos = tl.length ? tl[0].pos : streamPos + 1;
    let state = [];
    if (since === null || newlyJoined || limited) {
      state = [...room.state.values()].filter((e) => eventsById.get(e.event_id).pos < firstPos)
        .map((e) => clientEvent(eventsById.get(e.event_id), who));
    }
    out.rooms[section][room.room_id] = {
      timeline: { events: tl.map((r) => clientEvent(r, who)), limited,
        prev_batch: `s${Math.max(0, firstPos - 1)}` },
      state: { events: state }, account_data: { events: [] },
      ...(section === 'join' ? { ephemeral: { events: [] },
        unread_notifications: { highlight_count: 0, notification_count: 0 },
        summary: { 'm.joined_member_count': members(room).length,
          'm.invited_member_count': members(room, 'invite').length } } : {}),
    };
    any = true;
  }
  return { out, any };
}

// ---- routing ----
const routes = [];
function route(method, pattern, fn) {
  // pattern: '/_matrix/client/v3/rooms/:roomId/send/:type/:txnId'; '*rest' matches the remainder.
  const keys = [];
  const re = new RegExp('^' + pattern.replace(/[.]/g, '\\.').replace(/\/:(\w+)/g, (_, k) => {
    keys.push(k);
    return '/([^/]+)';
  }).replace(/\/\*(\w+)/, (_, k) => {
    keys.push(k);
    return '(?:/(.*))?';
  }) + '$');
  routes.push({ method, re, keys, fn });
}
const CS = '/_matrix/client/(?:v3|r0)';

route('GET', '/_matrix/client/versions', () => ({ versions: ['r0.6.1', 'v1.1', 'v1.2', 'v1.3',
  'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11'], unstable_features: {} }));
route('GET', CS + '/login', () => ({ flows: [{ type: 'm.login.password' },
  { type: 'm.login.application_service' }] }));
route('POST', CS + '/login', async (ctx) => {
  const b = ctx.json();
  let localpart = b.user || (b.identifier && b.identifier.user);
  if (!localpart) throw new MatrixError(400, 'M_INVALID_PARAM', 'Missing user');
  const user_id = localpart.startsWith('@') ? localpart : `@${localpart}:${SERVER_NAME}`;
  if (b.type === 'm.login.application_service') {
    if (!appservice || bearer(ctx.req, ctx.url) !== appservice.reg.as_token)
      throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid application service token');
    if (!isAsUser(user_id) || !users.has(user_id))
      throw new MatrixError(403, 'M_FORBIDDEN', 'Invalid user');
  } else if (b.type === 'm.login.password') {
    const u = users.get(user_id);
    if (!u || u.password === undefined || u.password !== b.password)
      throw new MatrixError(403, 'M_FORBIDDEN', 'Invalid username or password');
  } else {
    throw new MatrixError(400, 'M_UNKNOWN', 'Unknown login type');
  }
  const access_token = 'syt_' + randomId(24);
  const device_id = b.device_id || randomId(6).toUpperCase();
  tokens.set(access_token, { user_id, device_id });
  return { user_id, access_token, device_id, home_server: SERVER_NAME };
});
route('POST', CS + '/logout', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  tokens.delete(who.token);
  return {};
});
route('POST', CS + '/register', (ctx) => {
  const b = ctx.json();
  if (b.type !== 'm.login.application_service') {
    throw new MatrixError(401, 'M_FORBIDDEN', 'Registration is only open to application services',
      { flows: [], params: {}, session: randomId(8) });
  }
  if (!appservice || bearer(ctx.req, ctx.url) !== appservice.reg.as_token)
    throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Invalid application service token');
  const user_id = `@${b.username}:${SERVER_NAME}`;
  if (!b.username || !/^[a-z0-9._=\-/+]+$/.test(b.username))
    throw new MatrixError(400, 'M_INVALID_USERNAME', 'Invalid username');
  if (!isAsUser(user_id))
    throw new MatrixError(400, 'M_EXCLUSIVE', 'User ID not in the application service namespace');
  if (users.has(user_id)) throw new MatrixError(400, 'M_USER_IN_USE', 'User ID already taken.');
  users.set(user_id, { displayname: b.username, avatar_url: null, appservice: true });
  const res = { user_id, home_server: SERVER_NAME };
  if (!b.inhibit_login) {
    res.access_token = 'syt_' + randomId(24);
    res.device_id = randomId(6).toUpperCase();
    tokens.set(res.access_token, { user_id, device_id: res.device_id });
  }
  return res;
});
route('GET', CS + '/account/whoami', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  return { user_id: who.user_id, device_id: who.device_id, is_guest: false };
});
route('GET', CS + '/capabilities', () => ({ capabilities: { 'm.change_password': { enabled: false },
  'm.room_versions': { default: '10', available: { 10: 'stable' } } } }));
route('GET', CS + '/pushrules/*rest', () => ({ global: { override: [], content: [], room: [],
  sender: [], underride: [] } }));
route('POST', CS + '/user/:userId/filter', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  if (who.user_id !== ctx.p.userId) throw new MatrixError(403, 'M_FORBIDDEN', 'Cannot create filters for other users');
  const id = String(filters.size + 1);
  filters.set(id, ctx.json());
  return { filter_id: id };
});
route('GET', CS + '/user/:userId/filter/:filterId', (ctx) => {
  auth(ctx.req, ctx.url);
  const f = filters.get(ctx.p.filterId);
  if (!f) throw new MatrixError(404, 'M_NOT_FOUND', 'No such filter');
  return f;
});
route('GET', CS + '/sync', async (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const sinceS = ctx.url.searchParams.get('since');
  let since = null;
  if (sinceS) {
    const m = /^s(\d+)$/.exec(sinceS);
    if (!m) throw new MatrixError(400, 'M_INVALID_PARAM', 'Bad since token');
    since = Math.min(Number(m[1]), streamPos);
  }
  const filter = parseFilter(ctx.url.searchParams.get('filter'));
  const timeout = Math.min(Number(ctx.url.searchParams.get('timeout') || 0), 60000);
  const deadline = Date.now() + timeout;
  for (;;) {
    const { out, any } = buildSync(who, since, filter);
    if (any || since === null || Date.now() >= deadline || ctx.closed) return out;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      waiters.push(() => { clearTimeout(t); resolve(); });
    });
  }
});
route('POST', CS + '/createRoom', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  return { room_id: createRoom(who.user_id, ctx.json()) };
});
function resolveRoom(idOrAlias) {
  if (idOrAlias.startsWith('#')) {
    const id = aliases.get(idOrAlias);
    if (!id) throw new MatrixError(404, 'M_NOT_FOUND', 'Room alias not found');
    return getRoom(id);
  }
  return getRoom(idOrAlias);
}
route('POST', CS + '/join/:room', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = resolveRoom(ctx.p.room);
  join(room, who.user_id);
  return { room_id: room.room_id };
});
route('POST', CS + '/rooms/:roomId/join', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  join(room, who.user_id);
  return { room_id: room.room_id };
});
route('POST', CS + '/rooms/:roomId/leave', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  if (!['join', 'invite'].includes(membership(room, who.user_id)))
    throw new MatrixError(403, 'M_FORBIDDEN', 'User not in room');
  emit(room, { type: 'm.room.member', sender: who.user_id, state_key: who.user_id,
    content: { membership: 'leave' } });
  return {};
});
route('POST', CS + '/rooms/:roomId/invite', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const b = ctx.json();
  if (!b.user_id) throw new MatrixError(400, 'M_MISSING_PARAM', 'Missing user_id');
  const cur = membership(room, b.user_id);
  if (cur === 'join') throw new MatrixError(403, 'M_FORBIDDEN', `${b.user_id} is already in the room.`);
  if (cur === 'ban') throw new MatrixError(403, 'M_FORBIDDEN', `${b.user_id} is banned from the room`);
  emit(room, { type: 'm.room.member', sender: who.user_id, state_key: b.user_id,
    content: { membership: 'invite', ...(b.reason ? { reason: b.reason } : {}) } });
  return {};
});
route('GET', CS + '/joined_rooms', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  return { joined_rooms: [...rooms.values()].filter((r) => membership(r, who.user_id) === 'join')
    .map((r) => r.room_id) };
});
route('GET', CS + '/directory/room/:alias', (ctx) => {
  const id = aliases.get(ctx.p.alias);
  if (!id) throw new MatrixError(404, 'M_NOT_FOUND', 'Room alias not found');
  return { room_id: id, servers: [SERVER_NAME] };
});
function sendEvent(ctx, type, content, extra = {}) {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  const key = `${who.scope}\x1f${ctx.p.txnId}`;
  // Idempotent per access token (and asserted user) and txnId (client-server "Transaction
  // identifiers"): the same request again answers the same event id, posting nothing.
  if (txns.has(key)) return { event_id: txns.get(key) };
  requireJoined(room, who.user_id);
  const ev = emit(room, { type, sender: who.user_id, content, ...extra },
    { txn: { scope: who.scope, txnId: ctx.p.txnId } });
  txns.set(key, ev.event_id);
  return { event_id: ev.event_id };
}
route('PUT', CS + '/rooms/:roomId/send/:type/:txnId', (ctx) => sendEvent(ctx, ctx.p.type, ctx.json()));
route('PUT', CS + '/rooms/:roomId/redact/:eventId/:txnId', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  const rec = eventsById.get(ctx.p.eventId);
  if (!rec || rec.room_id !== room.room_id) throw new MatrixError(404, 'M_NOT_FOUND', 'Event not found');
  const key = `${who.scope}\x1f${ctx.p.txnId}`;
  if (txns.has(key)) return { event_id: txns.get(key) };
  requireJoined(room, who.user_id);
  const pl = room.state.get('m.room.power_levels\x1f');
  const level = (pl && pl.content.users && pl.content.users[who.user_id]) || 0;
  if (rec.ev.sender !== who.user_id && level < ((pl && pl.content.redact) || 50))
    throw new MatrixError(403, 'M_FORBIDDEN', 'You don\'t have permission to redact events');
  const b = ctx.json();
  const content = { redacts: ctx.p.eventId };
  if (b.reason) content.reason = b.reason;
  const ev = emit(room, { type: 'm.room.redaction', sender: who.user_id, content,
    redacts: ctx.p.eventId }, { txn: { scope: who.scope, txnId: ctx.p.txnId } });
  prune(rec.ev);
  rec.ev.unsigned.redacted_because = ev;
  txns.set(key, ev.event_id);
  return { event_id: ev.event_id };
});
function putState(ctx) {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const content = ctx.json();
  const type = ctx.p.type;
  const state_key = ctx.p.stateKey || '';
  if (type === 'm.room.member' && state_key !== who.user_id)
    throw new MatrixError(403, 'M_FORBIDDEN', 'Cannot set another user\'s membership here');
  const ev = emit(room, { type, sender: who.user_id, state_key, content });
  return { event_id: ev.event_id };
}
route('PUT', CS + '/rooms/:roomId/state/:type/*stateKey', putState);
function getState(ctx) {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const ev = room.state.get(`${ctx.p.type}\x1f${ctx.p.stateKey || ''}`);
  if (!ev) throw new MatrixError(404, 'M_NOT_FOUND', 'Event not found.');
  return ev.content;
}
route('GET', CS + '/rooms/:roomId/state/:type/*stateKey', getState);
route('GET', CS + '/rooms/:roomId/state', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  return [...room.state.values()];
});
route('GET', CS + '/rooms/:roomId/members', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  return { chunk: [...room.state.values()].filter((e) => e.type === 'm.room.member') };
});
route('GET', CS + '/rooms/:roomId/joined_members', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const joined = {};
  for (const u of members(room)) {
    const c = room.state.get(`m.room.member\x1f${u}`).content;
    joined[u] = { display_name: c.displayname || null, avatar_url: c.avatar_url || null };
  }
  return { joined };
});
route('GET', CS + '/rooms/:roomId/event/:eventId', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const rec = eventsById.get(ctx.p.eventId);
  if (!rec || rec.room_id !== room.room_id) throw new MatrixError(404, 'M_NOT_FOUND', 'Event not found.');
  return clientEvent(rec, who, true);
});
route('GET', CS + '/rooms/:roomId/messages', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const dir = ctx.url.searchParams.get('dir') || 'b';
  const limit = Math.min(Number(ctx.url.searchParams.get('limit') || 10), 100);
  const fromS = ctx.url.searchParams.get('from');
  const from = fromS && /^s\d+$/.test(fromS) ? Number(fromS.slice(1)) : (dir === 'b' ? streamPos : 0);
  let chunk;
  let end;
  if (dir === 'b') {
    chunk = room.timeline.filter((r) => r.pos <= from).slice(-limit).reverse();
    end = chunk.length ? `s${chunk[chunk.length - 1].pos - 1}` : undefined;
  } else {
    chunk = room.timeline.filter((r) => r.pos > from).slice(0, limit);
    end = chunk.length ? `s${chunk[chunk.length - 1].pos}` : undefined;
  }
  const res = { start: `s${from}`, chunk: chunk.map((r) => clientEvent(r, who, true)) };
  if (end !== undefined && chunk.length === limit) res.end = end;
  return res;
});
route('GET', '/_matrix/client/v1/rooms/:roomId/relations/:eventId/*rest', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  const room = getRoom(ctx.p.roomId);
  requireJoined(room, who.user_id);
  const [relType, evType] = (ctx.p.rest || '').split('/').filter(Boolean);
  const chunk = room.timeline.filter((r) => {
    const rel = r.ev.content && r.ev.content['m.relates_to'];
    return rel && rel.event_id === ctx.p.eventId && (!relType || rel.rel_type === relType) &&
      (!evType || r.ev.type === evType);
  }).reverse().map((r) => clientEvent(r, who, true));
  return { chunk };
});
// Profile (client-server "Profiles"): a change is also written to the member event of every room
// the user is in, as homeservers do.
route('GET', CS + '/profile/:userId', (ctx) => {
  const u = users.get(ctx.p.userId);
  if (!u) throw new MatrixError(404, 'M_NOT_FOUND', 'Profile was not found');
  const r = {};
  if (u.displayname) r.displayname = u.displayname;
  if (u.avatar_url) r.avatar_url = u.avatar_url;
  return r;
});
route('GET', CS + '/profile/:userId/:field', (ctx) => {
  const u = users.get(ctx.p.userId);
  if (!u) throw new MatrixError(404, 'M_NOT_FOUND', 'Profile was not found');
  const v = u[ctx.p.field];
  if (v === undefined || v === null) throw new MatrixError(404, 'M_NOT_FOUND', 'Profile field not set');
  return { [ctx.p.field]: v };
});
route('PUT', CS + '/profile/:userId/:field', (ctx) => {
  const who = auth(ctx.req, ctx.url);
  if (who.user_id !== ctx.p.userId) throw new MatrixError(403, 'M_FORBIDDEN', 'Cannot set another user\'s profile');
  const field = ctx.p.field;
  if (!['displayname', 'avatar_url'].includes(field))
    throw new MatrixError(400, 'M_INVALID_PARAM', 'Unknown profile field');
  const b = ctx.json();
  if (typeof b[field] !== 'string') throw new MatrixError(400, 'M_BAD_JSON', `Missing ${field}`);
  if (field === 'avatar_url' && b[field] && !b[field].startsWith('mxc://'))
    throw new MatrixError(400, 'M_INVALID_PARAM', 'avatar_url must be an mxc:// URI');
  const u = users.get(who.user_id);
  u[field] = b[field];
  for (const room of rooms.values()) {
    if (membership(room, who.user_id) !== 'join') continue;
    const cur = room.state.get(`m.room.member\x1f${who.user_id}`).content;
    const content = { ...cur, [field]: b[field] || undefined };
    emit(room, { type: 'm.room.member', sender: who.user_id, state_key: who.user_id, content });
  }
  return {};
});
// Media (content repository; authenticated download since v1.11).
function upload(ctx) {
  auth(ctx.req, ctx.url);
  if (ctx.raw.length > MAX_UPLOAD) throw new MatrixError(413, 'M_TOO_LARGE', 'Upload too large');
  const id = randomId(16);
  media.set(id, { type: ctx.req.headers['content-type'] || 'application/octet-stream',
    data: ctx.raw, filename: ctx.url.searchParams.get('filename') });
  return { content_uri: `mxc://${SERVER_NAME}/${id}` };
}
route('POST', '/_matrix/media/(?:v3|r0)/upload', upload);
function download(ctx, authed) {
  if (authed) auth(ctx.req, ctx.url);
  const m = ctx.p.serverName === SERVER_NAME ? media.get(ctx.p.mediaId) : null;
  if (!m) throw new MatrixError(404, 'M_NOT_FOUND', 'Not found');
  return { raw: m.data, type: m.type, filename: m.filename };
}
route('GET', '/_matrix/media/(?:v3|r0)/download/:serverName/:mediaId/*rest', (ctx) => download(ctx, false));
route('GET', '/_matrix/media/(?:v3|r0)/thumbnail/:serverName/:mediaId', (ctx) => download(ctx, false));
route('GET', '/_matrix/client/v1/media/download/:serverName/:mediaId/*rest', (ctx) => download(ctx, true));
route('GET', '/_matrix/client/v1/media/thumbnail/:serverName/:mediaId', (ctx) => download(ctx, true));
route('GET', '/_matrix/client/v1/media/config', (ctx) => { auth(ctx.req, ctx.url); return { 'm.upload.size': MAX_UPLOAD }; });
route('GET', '/_matrix/media/v3/config', () => ({ 'm.upload.size': MAX_UPLOAD }));
// Appservice ping (client-server "POST /_matrix/client/v1/appservice/{appserviceId}/ping").
route('POST', '/_matrix/client/v1/appservice/:asId/ping', async (ctx) => {
  if (!appservice || bearer(ctx.req, ctx.url) !== appservice.reg.as_token)
    throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Unknown access token');
  if (ctx.p.asId !== appservice.reg.id)
    throw new MatrixError(403, 'M_FORBIDDEN', 'Provided access token is not for this appservice');
  if (!appservice.reg.url) throw new MatrixError(400, 'M_URL_NOT_SET', 'Application service URL not set');
  const b = ctx.json();
  const t0 = Date.now();
  const r = await asPost('/_matrix/app/v1/ping', 'POST',
    b.transaction_id ? { transaction_id: b.transaction_id } : {});
  if (r.status === 0 && r.error === 'timeout')
    throw new MatrixError(504, 'M_CONNECTION_TIMEOUT', 'Connection to application service timed out');
  if (r.status === 0) throw new MatrixError(502, 'M_CONNECTION_FAILED', 'Connection failed');
  if (r.status !== 200) throw new MatrixError(502, 'M_BAD_STATUS', 'Bad status', { status: r.status, body: r.body });
  return { duration_ms: Date.now() - t0 };
});

// ---- control API for tests (not Matrix) ----
route('POST', '/_test/ratelimit', (ctx) => {
  const b = ctx.json();
  rateLimits.push({ method: b.method || null, path: new RegExp(b.path || '.*'),
    count: b.count || 1, retry_after_ms: b.retry_after_ms ?? 1000, header: b.header !== false });
  return {};
});
route('GET', '/_test/rooms/:roomId/timeline', (ctx) => ({
  events: getRoom(ctx.p.roomId).timeline.map((r) => r.ev) }));
route('GET', '/_test/rooms/:roomId/state', (ctx) => ({ state: [...getRoom(ctx.p.roomId).state.values()] }));
route('POST', '/_test/rooms', (ctx) => {
  const b = ctx.json();
  return { room_id: createRoom(b.creator, b) };
});
route('GET', '/_test/users/:userId', (ctx) => {
  const u = users.get(ctx.p.userId);
  if (!u) throw new MatrixError(404, 'M_NOT_FOUND', 'No such user');
  return { displayname: u.displayname, avatar_url: u.avatar_url };
});
route('GET', '/_test/media/:mediaId', (ctx) => {
  const m = media.get(ctx.p.mediaId);
  if (!m) throw new MatrixError(404, 'M_NOT_FOUND', 'Not found');
  return { raw: m.data, type: m.type, filename: m.filename };
});
route('GET', '/_test/as/log', () => ({ log: appservice ? appservice.log : [],
  pending: appservice ? appservice.queue.length + (appservice.inflight ? appservice.inflight.events.length : 0) : 0 }));
route('POST', '/_test/as/replay', async (ctx) => {
  // Sends an already-delivered transaction again, with its txnId, as a homeserver does when it
  // never saw the 200 (a crash between the AS processing it and answering).
  const b = ctx.json();
  const evs = appservice && appservice.sent.get(String(b.txnId));
  if (!evs) throw new MatrixError(404, 'M_NOT_FOUND', 'No such transaction');
  const r = await asPost(`/_matrix/app/v1/transactions/${encodeURIComponent(b.txnId)}`, 'PUT', { events: evs });
  appservice.log.push({ txnId: String(b.txnId), n: evs.length, status: r.status, replay: true });
  return { status: r.status };
});
route('GET', '/_test/requests', () => ({ requests: requestLog }));
// A fixed small PNG any test may use as an author's avatar or an attachment source.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
route('GET', '/_test/static/:name', () => ({ raw: PNG, type: 'image/png' }));
route('POST', '/_test/users', (ctx) => {
  const b = ctx.json();
  users.set(`@${b.localpart}:${SERVER_NAME}`, { password: b.password, displayname: b.displayname || b.localpart, avatar_url: null });
  return {};
});

// ---- server ----
function rateLimited(method, path) {
  for (let i = 0; i < rateLimits.length; i++) {
    const rl = rateLimits[i];
    if ((rl.method && rl.method !== method) || !rl.path.test(path)) continue;
    if (--rl.count <= 0) rateLimits.splice(i, 1);
    const headers = rl.header ? { 'Retry-After': String(Math.ceil(rl.retry_after_ms / 1000)) } : {};
    return new MatrixError(429, 'M_LIMIT_EXCEEDED', 'Too many requests',
      { retry_after_ms: rl.retry_after_ms }, headers);
  }
  return null;
}

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const path = decodeURI(url.pathname);
  const ctx = { req, res, url, p: {}, closed: false };
  req.on('close', () => { ctx.closed = true; wake(); });
  const entry = { method: req.method, path: url.pathname, user_id: url.searchParams.get('user_id'), status: 0 };
  if (!path.startsWith('/_test/')) requestLog.push(entry);
  try {
    ctx.raw = await readBody(req);
    ctx.json = () => jsonBody(ctx.raw);
    if (!path.startsWith('/_test/')) {
      const rl = rateLimited(req.method, url.pathname);
      if (rl) throw rl;
    }
    let found = false;
    for (const r of routes) {
      const m = r.re.exec(url.pathname);
      if (!m) continue;
      found = true;
      if (r.method !== req.method) continue;
      r.keys.forEach((k, i) => { ctx.p[k] = m[i + 1] === undefined ? undefined : decodeURIComponent(m[i + 1]); });
      const out = await r.fn(ctx);
      if (out && out.raw) {
        res.writeHead(200, { 'Content-Type': out.type, 'Content-Length': out.raw.length,
          ...(out.filename ? { 'Content-Disposition': `inline; filename="${out.filename.replace(/[^\w.-]/g, '_')}"` } : {}) });
        res.end(out.raw);
      } else {
        send(res, 200, out);
      }
      entry.status = 200;
      return;
    }
    if (found) throw new MatrixError(405, 'M_UNRECOGNIZED', 'Unrecognized request');
    throw new MatrixError(404, 'M_UNRECOGNIZED', 'Unrecognized request');
  } catch (e) {
    if (e instanceof MatrixError) {
      entry.status = e.status;
      if (!res.headersSent) send(res, e.status, e.body, e.headers);
    } else {
      console.error(e);
      entry.status = 500;
      if (!res.headersSent) send(res, 500, { errcode: 'M_UNKNOWN', error: 'Internal error' });
    }
  }
});
server.keepAliveTimeout = 60000;
server.listen(PORT, '127.0.0.1', () => {
  process.stdout.write(`LISTENING ${server.address().port}\n`);
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
