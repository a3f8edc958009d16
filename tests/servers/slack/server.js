// SPDX-License-Identifier: AGPL-3.0-or-later
// A Slack test server for Trestle: the Web API over HTTP (form and JSON bodies, `ok`
// envelopes, Slack's error strings, 429 + Retry-After) and Socket Mode over WebSocket (hello,
// events_api envelopes acked by envelope_id, disconnect, redelivery with retry_attempt). State
// (channels, messages keyed by ts, threads, reactions, files) lives in memory. Shapes follow
// ../../../../shared/specs/slack/samples (java-slack-sdk json-logs) and api.slack.com.
// A control API under /_control/ lets tests inject faults and read what a human would see.
//
// Usage: node server.js [--port N] [--host 127.0.0.1]; prints {"port":N} on stdout when ready.
'use strict';

const http = require('http');
const crypto = require('crypto');
const { URL, URLSearchParams } = require('url');
const { WebSocketServer } = require('ws');

const argv = process.argv.slice(2);
function arg(name, def) {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : def;
}
const HOST = arg('--host', '127.0.0.1');
const PORT = Number(arg('--port', '0'));

const TEAM = { id: 'T0TRESTLE', name: 'Trestle Co-op', domain: 'trestle-coop' };
const APP_ID = 'A0TRESTLE';
const BOT_ID = 'B0TRESTLE';
const BOT_USER = 'U0BOT';

// Tokens: type, owner, scopes (the x-oauth-scopes header lists them, as Slack does).
const BOT_SCOPES = ['chat:write', 'chat:write.customize', 'channels:read', 'channels:history',
  'channels:join', 'groups:read', 'groups:history', 'users:read', 'reactions:read',
  'reactions:write', 'files:write', 'files:read'];
const USER_SCOPES = ['chat:write', 'channels:read', 'channels:history', 'channels:write',
  'users:read', 'reactions:read', 'reactions:write', 'files:write', 'files:read'];
const tokens = new Map([
  ['xapp-1-A0TRESTLE-1-test', { type: 'app', scopes: ['connections:write'] }],
  ['xoxb-test-bot', { type: 'bot', user: BOT_USER, scopes: BOT_SCOPES }],
  ['xoxb-test-noscope', { type: 'bot', user: BOT_USER, scopes: ['channels:read', 'users:read'] }],
  ['xoxp-test-alice', { type: 'user', user: 'U0ALICE', scopes: USER_SCOPES }],
  ['xoxp-test-bob', { type: 'user', user: 'U0BOB', scopes: USER_SCOPES }],
  ['xoxp-test-carol', { type: 'user', user: 'U0CAROL', scopes: USER_SCOPES }],
]);

const users = new Map();
function addUser(id, name, real, display, isBot = false) {
  users.set(id, {
    id, team_id: TEAM.id, name, deleted: false, color: '9f69e7', real_name: real, tz: 'Europe/London',
    tz_label: 'Greenwich Mean Time', tz_offset: 0, is_admin: false, is_owner: false, is_bot: isBot,
    is_app_user: false, updated: 1700000000,
    profile: {
      title: '', phone: '', skype: '', real_name: real, real_name_normalized: real,
      display_name: display, display_name_normalized: display, status_text: '', status_emoji: '',
      avatar_hash: 'g' + id.toLowerCase(), team: TEAM.id,
      image_24: `https://avatars.example.org/${id}_24.png`,
      image_48: `https://avatars.example.org/${id}_48.png`,
      image_72: `https://avatars.example.org/${id}_72.png`,
      image_192: `https://avatars.example.org/${id}_192.png`,
    },
  });
}
addUser('U0ALICE', 'alice', 'Alice Smith', 'alice.s');
addUser('U0BOB', 'bob', 'Bob Jones', '');
addUser('U0CAROL', 'carol', 'Carol King', ''); // in no channel at first
addUser(BOT_USER, 'trestle', 'Trestle', 'Trestle', true);

const channels = new Map(); // id -> channel
function addChannel(id, name, members, isPrivate = false) {
  channels.set(id, {
    id, name, is_channel: !isPrivate, is_group: isPrivate, is_im: false, is_mpim: false,
    is_private: isPrivate, created: 1700000000, is_archived: false, is_general: name === 'general',
    name_normalized: name, creator: 'U0ALICE', is_shared: false, is_ext_shared: false,
    is_org_shared: false, topic: { value: '', creator: '', last_set: 0 },
    purpose: { value: '', creator: '', last_set: 0 },
    members: new Set(members), messages: [], // oldest first
  });
}
addChannel('C0GENERAL', 'general', ['U0ALICE', 'U0BOB', BOT_USER]);
addChannel('C0RANDOM', 'random', ['U0ALICE', 'U0BOB']);

const files = new Map(); // id -> {id, name, title, length, data, mimetype, uploaded}
const calls = [];        // every Web API call: {method, params, token_type}
const faults = { ratelimit: [] }; // [{method, count, retry_after, style}]
let lastTs = 0;
let seq = 0;

function newTs() {
  // Strictly increasing "seconds.micro" strings, as Slack's message ids.
  let t = Date.now() * 1000;
  if (t <= lastTs) t = lastTs + 1;
  lastTs = t;
  const s = String(Math.floor(t / 1e6));
  const us = String(t % 1e6).padStart(6, '0');
  return `${s}.${us}`;
}
function newId(prefix) {
  seq += 1;
  return prefix + crypto.randomBytes(4).toString('hex').toUpperCase() + seq;
}

// ---------------------------------------------------------------- Socket Mode

const sockets = new Set(); // {ws, id, draining}
const tickets = new Set();
const pending = new Map(); // envelope_id -> {envelope, timer, attempts}
const queue = [];          // envelopes waiting for a connection
const stats = { delivered: 0, acked: 0, redelivered: 0, connections: 0, hellos: 0 };
let ackTimeoutMs = 3000;
let disconnectGraceMs = 10000;

function liveSockets() {
  return [...sockets].filter((s) => !s.draining && s.ws.readyState === 1);
}

function sendEnvelope(env) {
  const live = liveSockets();
  if (!live.length) {
    queue.push(env);
    return;
  }
  const s = live[stats.delivered % live.length];
  stats.delivered += 1;
  s.ws.send(JSON.stringify(env));
  const p = pending.get(env.envelope_id) || { envelope: env, attempts: 0 };
  clearTimeout(p.timer);
  p.timer = setTimeout(() => redeliver(env.envelope_id), ackTimeoutMs);
  pending.set(env.envelope_id, p);
}

function redeliver(id) {
  const p = pending.get(id);
  if (!p) return;
  if (p.attempts >= 3) {
    // Slack gives up after three retries.
    pending.delete(id);
    return;
  }
  p.attempts += 1;
  stats.redelivered += 1;
  p.envelope = { ...p.envelope, retry_attempt: p.attempts, retry_reason: 'timeout' };
  sendEnvelope(p.envelope);
}

function flushQueue() {
  while (queue.length && liveSockets().length) sendEnvelope(queue.shift());
}

// Events go to the app when the bot is a member of the channel (message.channels etc.).
function emitEvent(event, channelId) {
  if (channelId) {
    const ch = channels.get(channelId);
    if (!ch || !ch.members.has(BOT_USER)) return;
  }
  const eventId = newId('Ev');
  const env = {
    envelope_id: crypto.randomUUID(),
    payload: {
      token: 'fixed-verification-token', team_id: TEAM.id, enterprise_id: null,
      api_app_id: APP_ID, event, type: 'event_callback', event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ enterprise_id: null, team_id: TEAM.id, user_id: BOT_USER, is_bot: true,
        is_enterprise_install: false }],
      is_ext_shared_channel: false,
      event_context: '4-' + Buffer.from(eventId).toString('base64'),
    },
    type: 'events_api',
    accepts_response_payload: false,
    retry_attempt: 0,
    retry_reason: '',
  };
  sendEnvelope(env);
}

function onSocketMessage(s, data) {
  let msg;
  try {
    msg = JSON.parse(String(data));
  } catch (e) {
    return;
  }
  if (msg && typeof msg.envelope_id === 'string') {
    const p = pending.get(msg.envelope_id);
    if (p) {
      clearTimeout(p.timer);
      pending.delete(msg.envelope_id);
      stats.acked += 1;
    }
  }
}

function disconnectSockets(reason, which) {
  const targets = which === 'one' ? liveSockets().slice(0, 1) : liveSockets();
  for (const s of targets) {
    s.draining = true;
    s.ws.send(JSON.stringify({ type: 'disconnect', reason,
      debug_info: { host: 'applink-test-1' } }));
    s.closeTimer = setTimeout(() => s.ws.close(1000, reason), disconnectGraceMs);
  }
  return targets.length;
}

// ---------------------------------------------------------------- Web API helpers

class ApiError extends Error {
  constructor(error, extra = {}) {
    super(error);
    this.body = { ok: false, error, ...extra };
  }
}

function authOf(req, params) {
  const h = req.headers.authorization || '';
  let tok = h.startsWith('Bearer ') ? h.slice(7).trim() : '';
  if (!tok && typeof params.token === 'string') tok = params.token;
  if (!tok) throw new ApiError('not_authed');
  const t = tokens.get(tok);
  if (!t) throw new ApiError('invalid_auth');
  return { token: tok, ...t };
}

function need(auth, scope) {
  if (auth.type === 'app' && scope !== 'connections:write') throw new ApiError('not_allowed_token_type');
  if (!auth.scopes.includes(scope)) {
    throw new ApiError('missing_scope', { needed: scope, provided: auth.scopes.join(',') });
  }
}

function req(params, name) {
  const v = params[name];
  if (v === undefined || v === null || v === '') throw new ApiError(`invalid_arguments`,
    { response_metadata: { messages: [`[ERROR] missing required field: ${name}`] } });
  return String(v);
}

function chan(params, auth, key = 'channel') {
  const id = params[key];
  if (!id) throw new ApiError('channel_not_found');
  const ch = channels.get(String(id));
  if (!ch) throw new ApiError('channel_not_found');
  return ch;
}

function memberOrThrow(ch, auth) {
  if (!ch.members.has(auth.user)) throw new ApiError('not_in_channel');
}

function findMsg(ch, ts) {
  return ch.messages.find((m) => m.ts === String(ts) && !m.deleted);
}

function bool(v) {
  return v === true || v === 'true' || v === '1' || v === 1;
}

// A message as Slack returns it (no internal fields).
function view(m) {
  const out = { type: 'message' };
  for (const k of ['subtype', 'text', 'user', 'bot_id', 'app_id', 'username', 'icons', 'ts',
    'team', 'thread_ts', 'parent_user_id', 'reply_count', 'reply_users_count', 'latest_reply',
    'reply_users', 'edited', 'files', 'upload', 'display_as_bot', 'bot_profile']) {
    if (m[k] !== undefined) out[k] = m[k];
  }
  if (m.reactions.length) {
    out.reactions = m.reactions.map((r) => ({ name: r.name, users: [...r.users], count: r.users.length }));
  }
  if (m.client_msg_id) out.client_msg_id = m.client_msg_id;
  out.blocks = [];
  return out;
}

function newMessage(ch, auth, params, extra = {}) {
  const m = {
    ts: newTs(), team: TEAM.id, text: String(params.text || ''), user: auth.user, reactions: [],
    channel: ch.id, ...extra,
  };
  if (auth.type === 'bot') {
    m.bot_id = BOT_ID;
    m.app_id = APP_ID;
    m.bot_profile = { id: BOT_ID, deleted: false, name: 'trestle', updated: 1700000000, app_id: APP_ID,
      icons: { image_36: 'https://avatars.example.org/bot_36.png',
        image_48: 'https://avatars.example.org/bot_48.png',
        image_72: 'https://avatars.example.org/bot_72.png' }, team_id: TEAM.id, user_id: BOT_USER };
    // With chat:write.customize the bridged author's name and avatar replace the bot's.
    if (auth.scopes.includes('chat:write.customize') && (params.username || params.icon_url || params.icon_emoji)) {
      if (params.username) m.username = String(params.username);
      if (params.icon_url) m.icons = { image_48: String(params.icon_url) };
      else if (params.icon_emoji) m.icons = { emoji: String(params.icon_emoji) };
      m.subtype = 'bot_message';
    }
  } else {
    m.client_msg_id = crypto.randomUUID();
  }
  if (params.thread_ts) {
    const parent = findMsg(ch, params.thread_ts);
    if (parent) {
      m.thread_ts = parent.thread_ts || parent.ts;
      const root = findMsg(ch, m.thread_ts) || parent;
      m.parent_user_id = root.user;
      root.thread_ts = root.ts;
      root.reply_count = (root.reply_count || 0) + 1;
      root.reply_users = [...new Set([...(root.reply_users || []), m.user])];
      root.reply_users_count = root.reply_users.length;
      root.latest_reply = m.ts;
      if (bool(params.reply_broadcast)) m.subtype = 'thread_broadcast';
    }
  }
  ch.messages.push(m);
  return m;
}

function messageEvent(ch, m) {
  const ev = { ...view(m), channel: ch.id, event_ts: m.ts, channel_type: 'channel' };
  delete ev.reactions;
  return ev;
}

function ratelimitFor(method) {
  const f = faults.ratelimit.find((r) => (r.method === method || r.method === '*') && r.count > 0);
  if (!f) return null;
  f.count -= 1;
  f.hits = (f.hits || 0) + 1;
  return f;
}

// ---------------------------------------------------------------- Web API methods

let baseUrl = '';

const methods = {
  'api.test': (auth, p) => ({ args: p }),
  'auth.test': (auth) => {
    if (auth.type === 'app') throw new ApiError('not_allowed_token_type');
    const out = { url: `https://${TEAM.domain}.slack.com/`, team: TEAM.name,
      user: users.get(auth.user).name, team_id: TEAM.id, user_id: auth.user,
      is_enterprise_install: false };
    if (auth.type === 'bot') {
      out.bot_id = BOT_ID;
      out.app_id = APP_ID;
    }
    return out;
  },
  'apps.connections.open': (auth) => {
    if (auth.type !== 'app') throw new ApiError('not_allowed_token_type');
    need(auth, 'connections:write');
    const ticket = crypto.randomUUID();
    tickets.add(ticket);
    return { url: `${baseUrl.replace(/^http/, 'ws')}/link/?ticket=${ticket}&app_id=${APP_ID}` };
  },
  'chat.postMessage': (auth, p) => {
    need(auth, 'chat:write');
    const ch = chan(p, auth);
    memberOrThrow(ch, auth);
    const text = p.text === undefined ? '' : String(p.text);
    if (!text && !p.blocks && !p.attachments) throw new ApiError('no_text');
    if (text.length > 40000) throw new ApiError('msg_too_long');
    const m = newMessage(ch, auth, p);
    emitEvent(messageEvent(ch, m), ch.id);
    return { channel: ch.id, ts: m.ts, message: view(m) };
  },
  'chat.meMessage': (auth, p) => {
    need(auth, 'chat:write');
    const ch = chan(p, auth);
    memberOrThrow(ch, auth);
    const m = newMessage(ch, auth, p, { subtype: 'me_message' });
    emitEvent(messageEvent(ch, m), ch.id);
    return { channel: ch.id, ts: m.ts };
  },
  'chat.update': (auth, p) => {
    need(auth, 'chat:write');
    const ch = chan(p, auth);
    const m = findMsg(ch, req(p, 'ts'));
    if (!m) throw new ApiError('message_not_found');
    if (m.user !== auth.user) throw new ApiError('cant_update_message');
    const previous = messageEvent(ch, m);
    m.text = String(p.text || '');
    m.edited = { user: auth.user, ts: newTs() };
    emitEvent({ type: 'message', subtype: 'message_changed', channel: ch.id, hidden: true,
      message: { ...view(m) }, previous_message: previous, event_ts: m.edited.ts,
      ts: m.edited.ts, channel_type: 'channel' }, ch.id);
    return { channel: ch.id, ts: m.ts, text: m.text, message: view(m) };
  },
  'chat.delete': (auth, p) => {
    need(auth, 'chat:write');
    const ch = chan(p, auth);
    const m = findMsg(ch, req(p, 'ts'));
    if (!m) throw new ApiError('message_not_found');
    if (m.user !== auth.user) throw new ApiError('cant_delete_message');
    m.deleted = true;
    const ts = newTs();
    emitEvent({ type: 'message', subtype: 'message_deleted', channel: ch.id, hidden: true,
      deleted_ts: m.ts, previous_message: view(m), event_ts: ts, ts, channel_type: 'channel' }, ch.id);
    return { channel: ch.id, ts: m.ts };
  },
  'reactions.add': (auth, p) => {
    need(auth, 'reactions:write');
    const ch = chan(p, auth);
    const m = findMsg(ch, req(p, 'timestamp'));
    if (!m) throw new ApiError('message_not_found');
    const name = req(p, 'name').replace(/^:|:$/g, '');
    if (!/^[a-z0-9_+'-]+(::skin-tone-[2-6])?$/.test(name)) throw new ApiError('invalid_name');
    let r = m.reactions.find((x) => x.name === name);
    if (r && r.users.includes(auth.user)) throw new ApiError('already_reacted');
    if (!r) m.reactions.push((r = { name, users: [] }));
    r.users.push(auth.user);
    emitEvent({ type: 'reaction_added', user: auth.user, item: { type: 'message', channel: ch.id, ts: m.ts },
      reaction: name, item_user: m.user, event_ts: newTs() }, ch.id);
    return {};
  },
  'reactions.remove': (auth, p) => {
    need(auth, 'reactions:write');
    const ch = chan(p, auth);
    const m = findMsg(ch, req(p, 'timestamp'));
    if (!m) throw new ApiError('message_not_found');
    const name = req(p, 'name').replace(/^:|:$/g, '');
    const r = m.reactions.find((x) => x.name === name);
    if (!r || !r.users.includes(auth.user)) throw new ApiError('no_reaction');
    r.users = r.users.filter((u) => u !== auth.user);
    if (!r.users.length) m.reactions = m.reactions.filter((x) => x !== r);
    emitEvent({ type: 'reaction_removed', user: auth.user, item: { type: 'message', channel: ch.id, ts: m.ts },
      reaction: name, item_user: m.user, event_ts: newTs() }, ch.id);
    return {};
  },
  'reactions.get': (auth, p) => {
    need(auth, 'reactions:read');
    const ch = chan(p, auth);
    const m = findMsg(ch, req(p, 'timestamp'));
    if (!m) throw new ApiError('message_not_found');
    return { type: 'message', channel: ch.id, message: view(m) };
  },
  'conversations.info': (auth, p) => {
    need(auth, 'channels:read');
    const ch = chan(p, auth);
    const { members, messages, ...pub } = ch;
    return { channel: { ...pub, is_member: members.has(auth.user), num_members: members.size } };
  },
  'conversations.join': (auth, p) => {
    need(auth, auth.type === 'bot' ? 'channels:join' : 'channels:write');
    const ch = chan(p, auth);
    if (ch.is_private) throw new ApiError('method_not_supported_for_channel_type');
    if (!ch.members.has(auth.user)) {
      ch.members.add(auth.user);
      const m = newMessage(ch, auth, { text: `<@${auth.user}> has joined the channel` },
        { subtype: 'channel_join' });
      emitEvent({ type: 'member_joined_channel', user: auth.user, channel: ch.id, channel_type: 'C',
        team: TEAM.id, event_ts: m.ts }, ch.id);
      emitEvent(messageEvent(ch, m), ch.id);
    }
    const { members, messages, ...pub } = ch;
    return { channel: { ...pub, is_member: true } };
  },
  'conversations.setTopic': (auth, p) => {
    need(auth, 'channels:write');
    const ch = chan(p, auth);
    memberOrThrow(ch, auth);
    const topic = String(p.topic || '');
    ch.topic = { value: topic, creator: auth.user, last_set: Math.floor(Date.now() / 1000) };
    const m = newMessage(ch, auth, { text: `set the channel topic: ${topic}` },
      { subtype: 'channel_topic', topic });
    emitEvent({ ...messageEvent(ch, m), topic }, ch.id);
    const { members, messages, ...pub } = ch;
    return { channel: pub };
  },
  'conversations.history': (auth, p) => {
    need(auth, 'channels:history');
    const ch = chan(p, auth);
    memberOrThrow(ch, auth);
    const limit = Math.min(Number(p.limit || 100), 1000);
    let list = ch.messages.filter((m) => !m.deleted && (!m.thread_ts || m.thread_ts === m.ts || m.subtype === 'thread_broadcast'));
    if (p.oldest) list = list.filter((m) => m.ts > String(p.oldest));
    if (p.latest) list = list.filter((m) => m.ts < String(p.latest));
    list = list.slice().reverse();
    return { messages: list.slice(0, limit).map(view), has_more: list.length > limit, pin_count: 0,
      response_metadata: { next_cursor: '' } };
  },
  'conversations.replies': (auth, p) => {
    need(auth, 'channels:history');
    const ch = chan(p, auth);
    memberOrThrow(ch, auth);
    const ts = req(p, 'ts');
    const list = ch.messages.filter((m) => !m.deleted && (m.ts === ts || m.thread_ts === ts));
    if (!list.length) throw new ApiError('thread_not_found');
    return { messages: list.map(view), has_more: false, response_metadata: { next_cursor: '' } };
  },
  'users.info': (auth, p) => {
    need(auth, 'users:read');
    const u = users.get(String(p.user || ''));
    if (!u) throw new ApiError('user_not_found');
    return { user: u };
  },
  'files.getUploadURLExternal': (auth, p) => {
    need(auth, 'files:write');
    const filename = req(p, 'filename');
    const length = Number(req(p, 'length'));
    if (!Number.isInteger(length) || length < 0) throw new ApiError('invalid_arguments');
    const id = newId('F');
    files.set(id, { id, name: filename, title: filename, length, data: null, uploaded: false,
      owner: auth.user });
    return { upload_url: `${baseUrl}/upload/v1/${id}`, file_id: id };
  },
  'files.completeUploadExternal': (auth, p) => {
    need(auth, 'files:write');
    let list = p.files;
    if (typeof list === 'string') {
      try {
        list = JSON.parse(list);
      } catch (e) {
        throw new ApiError('invalid_arguments');
      }
    }
    if (!Array.isArray(list) || !list.length) throw new ApiError('invalid_arguments');
    const out = [];
    for (const f of list) {
      const rec = files.get(String(f.id));
      if (!rec || !rec.uploaded) throw new ApiError('file_not_found');
      if (f.title) rec.title = String(f.title);
      out.push(fileView(rec));
    }
    if (p.channel_id) {
      const ch = chan(p, auth, 'channel_id');
      memberOrThrow(ch, auth);
      const m = newMessage(ch, auth, { text: p.initial_comment || '', thread_ts: p.thread_ts },
        { subtype: 'file_share', upload: true, files: out, display_as_bot: false });
      emitEvent(messageEvent(ch, m), ch.id);
    }
    return { files: out };
  },
};

function fileView(f) {
  return { id: f.id, created: 1700000000, timestamp: 1700000000, name: f.name, title: f.title,
    mimetype: f.mimetype || 'application/octet-stream', filetype: 'binary', user: f.owner,
    size: f.length, url_private: `${baseUrl}/files-pri/${TEAM.id}-${f.id}/${encodeURIComponent(f.name)}`,
    url_private_download: `${baseUrl}/files-pri/${TEAM.id}-${f.id}/download/${encodeURIComponent(f.name)}`,
    permalink: `https://${TEAM.domain}.slack.com/files/${f.owner}/${f.id}/${encodeURIComponent(f.name)}`,
    is_external: false, external_type: '', is_public: true, mode: 'hosted' };
}

// ---------------------------------------------------------------- HTTP plumbing

function readBody(req, limit = 64 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on('data', (c) => {
      n += c.length;
      if (n > limit) {
        reject(new Error('too big'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res, status, body, headers = {}) {
  const s = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(s), ...headers });
  res.end(s);
}

function parseParams(req, raw, url) {
  const params = Object.fromEntries(url.searchParams);
  const ct = String(req.headers['content-type'] || '').toLowerCase();
  if (!raw.length) return params;
  if (ct.startsWith('application/json')) {
    const j = JSON.parse(raw.toString('utf8'));
    if (j && typeof j === 'object') Object.assign(params, j);
  } else if (ct.startsWith('multipart/form-data')) {
    const m = /boundary=(?:"([^"]+)"|([^;]+))/.exec(ct);
    const b = '--' + (m[1] || m[2]);
    for (const part of raw.toString('latin1').split(b)) {
      const hm = /name="([^"]+)"[^\r]*\r\n(?:[^\r]+\r\n)*\r\n([\s\S]*)\r\n$/.exec(part);
      if (hm) params[hm[1]] = Buffer.from(hm[2], 'latin1').toString('utf8');
    }
  } else {
    Object.assign(params, Object.fromEntries(new URLSearchParams(raw.toString('utf8'))));
  }
  return params;
}

async function handleApi(req, res, url, method) {
  const raw = await readBody(req);
  let params;
  try {
    params = parseParams(req, raw, url);
  } catch (e) {
    return sendJson(res, 200, { ok: false, error: 'invalid_json' });
  }
  const fn = methods[method];
  let auth = null;
  const rec = { method, params: { ...params }, at: Date.now() };
  delete rec.params.token;
  calls.push(rec);
  try {
    if (!fn) throw new ApiError('unknown_method');
    const rl = ratelimitFor(method);
    if (rl) {
      rec.ratelimited = true;
      if (rl.style === 'ok_false') return sendJson(res, 200, { ok: false, error: 'ratelimited' });
      return sendJson(res, 429, { ok: false, error: 'ratelimited' },
        { 'retry-after': String(rl.retry_after) });
    }
    if (method !== 'api.test') auth = authOf(req, params);
    rec.token_type = auth && auth.type;
    const body = fn(auth, params);
    const headers = auth ? { 'x-oauth-scopes': auth.scopes.join(','),
      'x-accepted-oauth-scopes': '' } : {};
    rec.ok = true;
    return sendJson(res, 200, { ok: true, ...body }, headers);
  } catch (e) {
    if (e instanceof ApiError) {
      rec.error = e.body.error;
      const headers = auth ? { 'x-oauth-scopes': auth.scopes.join(',') } : {};
      return sendJson(res, 200, e.body, headers);
    }
    console.error(e);
    return sendJson(res, 500, { ok: false, error: 'internal_error' });
  }
}

async function handleUpload(req, res, id) {
  const f = files.get(id);
  const raw = await readBody(req);
  if (!f) {
    res.writeHead(404);
    return res.end('Not Found');
  }
  let data = raw;
  const ct = String(req.headers['content-type'] || '');
  if (ct.startsWith('multipart/form-data')) {
    const m = /boundary=(?:"([^"]+)"|([^;]+))/.exec(ct);
    const b = Buffer.from('--' + (m[1] || m[2]));
    const start = raw.indexOf(Buffer.from('\r\n\r\n')) + 4;
    const end = raw.indexOf(b, start) - 2;
    data = raw.subarray(start, end);
    const mt = /Content-Type: ([^\r]+)/i.exec(raw.subarray(0, start).toString('latin1'));
    if (mt) f.mimetype = mt[1];
  } else if (ct) {
    f.mimetype = ct;
  }
  f.data = data;
  f.uploaded = true;
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end(`OK - ${data.length}`);
}

async function handleControl(req, res, url) {
  const raw = await readBody(req);
  const body = raw.length ? JSON.parse(raw.toString('utf8')) : {};
  const path = url.pathname.slice('/_control/'.length);
  switch (path) {
    case 'ratelimit': // {method, count, retry_after, style: "429"|"ok_false"}
      faults.ratelimit.push({ method: body.method || '*', count: Number(body.count || 1),
        retry_after: Number(body.retry_after === undefined ? 1 : body.retry_after), style: body.style || '429' });
      return sendJson(res, 200, { ok: true });
    case 'disconnect': // {reason, which: "all"|"one"}
      return sendJson(res, 200, { ok: true, sent: disconnectSockets(body.reason || 'refresh_requested', body.which) });
    case 'drop': // close every socket abruptly, no disconnect message
      for (const s of sockets) s.ws.terminate();
      return sendJson(res, 200, { ok: true });
    case 'settings':
      if (body.ack_timeout_ms) ackTimeoutMs = Number(body.ack_timeout_ms);
      if (body.disconnect_grace_ms !== undefined) disconnectGraceMs = Number(body.disconnect_grace_ms);
      return sendJson(res, 200, { ok: true });
    case 'messages': { // ?channel=C...: as a human sees the channel, oldest first
      const ch = channels.get(url.searchParams.get('channel') || '');
      if (!ch) return sendJson(res, 404, { ok: false, error: 'channel_not_found' });
      return sendJson(res, 200, { ok: true, messages: ch.messages.filter((m) => !m.deleted).map((m) => {
        const v = view(m);
        v.display_name = m.username || (users.get(m.user) || {}).real_name;
        v.icon_url = m.icons && m.icons.image_48;
        return v;
      }) });
    }
    case 'channel': // {id, name, members}
      addChannel(body.id, body.name, body.members || [], !!body.private);
      return sendJson(res, 200, { ok: true });
    case 'event': // {event, channel}: inject a raw event
      emitEvent(body.event, body.channel);
      return sendJson(res, 200, { ok: true });
    case 'calls':
      return sendJson(res, 200, { ok: true, calls });
    case 'stats':
      return sendJson(res, 200, { ok: true, ...stats, pending: pending.size, queued: queue.length,
        sockets: [...sockets].map((s) => ({ id: s.id, draining: !!s.draining, state: s.ws.readyState })),
        ratelimit_hits: faults.ratelimit.reduce((a, f) => a + (f.hits || 0), 0) });
    case 'file': { // ?id=F...
      const f = files.get(url.searchParams.get('id') || '');
      if (!f) return sendJson(res, 404, { ok: false });
      return sendJson(res, 200, { ok: true, name: f.name, title: f.title, length: f.length,
        size: f.data ? f.data.length : 0, data_b64: f.data ? f.data.toString('base64') : '' });
    }
    default:
      return sendJson(res, 404, { ok: false, error: 'unknown_control' });
  }
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, baseUrl || 'http://localhost');
  let p;
  if (url.pathname.startsWith('/api/')) p = handleApi(req, res, url, url.pathname.slice(5));
  else if (url.pathname.startsWith('/upload/v1/')) p = handleUpload(req, res, url.pathname.slice(11));
  else if (url.pathname.startsWith('/_control/')) p = handleControl(req, res, url);
  else if (url.pathname.startsWith('/files-pri/')) {
    const m = /^\/files-pri\/[^-]+-([^/]+)\//.exec(url.pathname);
    const f = m && files.get(m[1]);
    if (!f || !f.data) {
      res.writeHead(404);
      res.end();
    } else {
      res.writeHead(200, { 'content-type': f.mimetype || 'application/octet-stream' });
      res.end(f.data);
    }
    return;
  } else if (url.pathname.startsWith('/static/')) {
    // Public files the tests let the connector fetch (an attachment's source URL).
    const body = Buffer.from(`file ${url.pathname}\n`.repeat(8));
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
    res.end(body);
    return;
  } else {
    res.writeHead(404);
    res.end();
    return;
  }
  p.catch((e) => {
    console.error(e);
    if (!res.headersSent) sendJson(res, 500, { ok: false, error: 'internal_error' });
  });
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://localhost');
  const ticket = url.searchParams.get('ticket');
  if (url.pathname !== '/link/' || !ticket || !tickets.has(ticket)) {
    socket.write('HTTP/1.1 401 Unauthorized\r\n\r\n');
    socket.destroy();
    return;
  }
  tickets.delete(ticket); // single use, like Slack's
  wss.handleUpgrade(req, socket, head, (ws) => {
    const s = { ws, id: ++stats.connections, draining: false };
    sockets.add(s);
    ws.on('message', (data) => onSocketMessage(s, data));
    ws.on('close', () => {
      clearTimeout(s.closeTimer);
      clearInterval(s.pinger);
      sockets.delete(s);
    });
    ws.on('error', () => {});
    s.pinger = setInterval(() => ws.readyState === 1 && ws.ping(), 5000);
    stats.hellos += 1;
    ws.send(JSON.stringify({ type: 'hello', num_connections: liveSockets().length,
      debug_info: { host: 'applink-test-1', build_number: 1, approximate_connection_time: 18060 },
      connection_info: { app_id: APP_ID } }));
    flushQueue();
  });
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  baseUrl = `http://${HOST}:${port}`;
  process.stdout.write(JSON.stringify({ port, api: `${baseUrl}/api/` }) + '\n');
});

function shutdown() {
  for (const s of sockets) s.ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
