// SPDX-License-Identifier: AGPL-3.0-or-later
// Checks the Slack test server with Slack's own SDKs from npm (@slack/web-api for a human with
// a user token and for the bot, @slack/socket-mode for the app): if they cannot use it, the
// server is wrong. Run: node --test sdk_check.test.js (tests/integration/test_40_slack_sdk.py).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const path = require('node:path');
const { WebClient, ErrorCode } = require('@slack/web-api');
const { SocketModeClient } = require('@slack/socket-mode');

const ALICE = 'xoxp-test-alice';
const BOT = 'xoxb-test-bot';
const APP = 'xapp-1-A0TRESTLE-1-test';
let proc;
let api;
let base;

function quiet() {
  const noop = () => {};
  return { debug: noop, info: noop, warn: noop, error: noop, setLevel: noop, getLevel: () => 'error',
    setName: noop };
}

async function control(p, body) {
  const r = await fetch(`${base}/_control/${p}`, body === undefined ? {} : {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return r.json();
}

// Bounded wait for a condition (no fixed sleeps).
async function waitFor(pred, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.before(async () => {
  proc = spawn(process.execPath, [path.join(__dirname, 'server.js'), '--port', '0'],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise((resolve, reject) => {
    let buf = '';
    proc.stdout.on('data', (d) => {
      buf += d;
      if (buf.includes('\n')) resolve(buf.split('\n')[0]);
    });
    proc.on('exit', () => reject(new Error('server exited')));
  });
  const info = JSON.parse(line);
  api = info.api;
  base = api.replace(/\/api\/$/, '');
});

test.after(() => {
  proc.kill('SIGTERM');
});

function client(token, extra = {}) {
  return new WebClient(token, { slackApiUrl: api, logger: quiet(),
    retryConfig: { retries: 2, factor: 1, minTimeout: 10, maxTimeout: 20 }, ...extra });
}

test('a human posts, edits, reacts, threads and reads history with @slack/web-api', async () => {
  const alice = client(ALICE);
  const who = await alice.auth.test();
  assert.equal(who.user_id, 'U0ALICE');
  const posted = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'hello *world*' });
  assert.equal(posted.ok, true);
  assert.match(posted.ts, /^\d+\.\d{6}$/);
  assert.equal(posted.message.text, 'hello *world*');
  const upd = await alice.chat.update({ channel: 'C0GENERAL', ts: posted.ts, text: 'hello again' });
  assert.equal(upd.text, 'hello again');
  await alice.reactions.add({ channel: 'C0GENERAL', timestamp: posted.ts, name: 'thumbsup' });
  const reply = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'in thread', thread_ts: posted.ts });
  assert.equal(reply.message.thread_ts, posted.ts);
  const hist = await alice.conversations.history({ channel: 'C0GENERAL', limit: 10 });
  const top = hist.messages.find((m) => m.ts === posted.ts);
  assert.equal(top.text, 'hello again');
  assert.ok(top.edited);
  assert.deepEqual(top.reactions, [{ name: 'thumbsup', users: ['U0ALICE'], count: 1 }]);
  assert.equal(top.reply_count, 1);
  const replies = await alice.conversations.replies({ channel: 'C0GENERAL', ts: posted.ts });
  assert.equal(replies.messages.length, 2);
  await alice.reactions.remove({ channel: 'C0GENERAL', timestamp: posted.ts, name: 'thumbsup' });
  const del = await alice.chat.delete({ channel: 'C0GENERAL', ts: reply.ts });
  assert.equal(del.ts, reply.ts);
  const u = await alice.users.info({ user: 'U0BOB' });
  assert.equal(u.user.real_name, 'Bob Jones');
  const c = await alice.conversations.info({ channel: 'C0GENERAL' });
  assert.equal(c.channel.name, 'general');
});

test('the bot posts as a bridged author with username and icon_url', async () => {
  const bot = client(BOT);
  const who = await bot.auth.test();
  assert.equal(who.bot_id, 'B0TRESTLE');
  const r = await bot.chat.postMessage({ channel: 'C0GENERAL', text: 'bridged', username: 'Carol (matrix)',
    icon_url: 'https://example.org/carol.png' });
  assert.equal(r.message.username, 'Carol (matrix)');
  assert.equal(r.message.bot_id, 'B0TRESTLE');
  const seen = await control(`messages?channel=C0GENERAL`);
  const m = seen.messages.find((x) => x.ts === r.ts);
  assert.equal(m.display_name, 'Carol (matrix)');
  assert.equal(m.icon_url, 'https://example.org/carol.png');
});

test('errors carry Slack error strings', async () => {
  const bad = client('xoxb-nope');
  await assert.rejects(bad.auth.test(), (e) => e.code === ErrorCode.PlatformError && e.data.error === 'invalid_auth');
  const none = client(undefined);
  await assert.rejects(none.chat.postMessage({ channel: 'C0GENERAL', text: 'x' }),
    (e) => e.data.error === 'not_authed');
  const noscope = client('xoxb-test-noscope');
  await assert.rejects(noscope.chat.postMessage({ channel: 'C0GENERAL', text: 'x' }),
    (e) => e.data.error === 'missing_scope' && e.data.needed === 'chat:write' && e.data.provided.includes('users:read'));
  const bot = client(BOT);
  await assert.rejects(bot.chat.postMessage({ channel: 'C0NOPE', text: 'x' }), (e) => e.data.error === 'channel_not_found');
  await assert.rejects(bot.chat.postMessage({ channel: 'C0RANDOM', text: 'x' }), (e) => e.data.error === 'not_in_channel');
  await assert.rejects(bot.chat.update({ channel: 'C0GENERAL', ts: '1.000000', text: 'x' }), (e) => e.data.error === 'message_not_found');
  const alice = client(ALICE);
  const p = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'mine' });
  await assert.rejects(bot.chat.update({ channel: 'C0GENERAL', ts: p.ts, text: 'x' }), (e) => e.data.error === 'cant_update_message');
  const app = client(APP);
  await assert.rejects(app.auth.test(), (e) => e.data.error === 'not_allowed_token_type');
  await assert.rejects(bot.apps.connections.open(), (e) => e.data.error === 'not_allowed_token_type');
});

test('429 with Retry-After: the SDK reports it and, when allowed, retries after it', async () => {
  await control('ratelimit', { method: 'chat.postMessage', count: 1, retry_after: 1 });
  const strict = client(BOT, { rejectRateLimitedCalls: true });
  await assert.rejects(strict.chat.postMessage({ channel: 'C0GENERAL', text: 'x' }),
    (e) => e.code === ErrorCode.RateLimitedError && e.retryAfter === 1);
  await control('ratelimit', { method: 'chat.postMessage', count: 1, retry_after: 1 });
  const patient = client(BOT);
  const r = await patient.chat.postMessage({ channel: 'C0GENERAL', text: 'after the wait' });
  assert.equal(r.ok, true);
});

test('files.uploadV2 (getUploadURLExternal, upload, completeUploadExternal) shares a file', async () => {
  const bot = client(BOT);
  const r = await bot.files.uploadV2({ channel_id: 'C0GENERAL', filename: 'cat.txt', title: 'A cat',
    content: 'meow meow', initial_comment: 'a file' });
  assert.equal(r.ok, true);
  const f = r.files[0].files[0];
  assert.equal(f.title, 'A cat');
  const stored = await control(`file?id=${f.id}`);
  assert.equal(Buffer.from(stored.data_b64, 'base64').toString(), 'meow meow');
  const seen = await control('messages?channel=C0GENERAL');
  assert.ok(seen.messages.some((m) => m.subtype === 'file_share' && m.files[0].id === f.id));
});

test('@slack/socket-mode receives events, acks them, and survives a disconnect', async () => {
  const app = new SocketModeClient({ appToken: APP, logger: quiet(), clientOptions: { slackApiUrl: api } });
  const seen = [];
  const reacted = [];
  // Every envelope is acked, whatever its event (the earlier tests' events are queued for it).
  app.on('slack_event', async ({ ack, body }) => {
    await ack();
    const event = body && body.event;
    if (!event) return;
    if (event.type === 'message') seen.push(event);
    if (event.type === 'reaction_added') reacted.push(event);
  });
  await app.start();
  try {
    const alice = client(ALICE);
    const p = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'to the app' });
    const ev = await waitFor(() => seen.find((e) => e.ts === p.ts));
    assert.equal(ev.user, 'U0ALICE');
    assert.equal(ev.channel, 'C0GENERAL');
    assert.equal(ev.text, 'to the app');
    await alice.reactions.add({ channel: 'C0GENERAL', timestamp: p.ts, name: 'tada' });
    const r = await waitFor(() => reacted.find((e) => e.item.ts === p.ts));
    assert.equal(r.reaction, 'tada');
    await waitFor(async () => (await control('stats')).pending === 0);
    // Slack asks the client to reconnect; the SDK opens a new connection.
    const before = (await control('stats')).hellos;
    await control('settings', { disconnect_grace_ms: 200 });
    await control('disconnect', { reason: 'refresh_requested' });
    await waitFor(async () => (await control('stats')).hellos > before);
    const p2 = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'after refresh' });
    await waitFor(() => seen.find((e) => e.ts === p2.ts));
    // Messages in a channel the bot is not in never reach the app.
    const p3 = await alice.chat.postMessage({ channel: 'C0RANDOM', text: 'elsewhere' });
    const p4 = await alice.chat.postMessage({ channel: 'C0GENERAL', text: 'barrier' });
    await waitFor(() => seen.find((e) => e.ts === p4.ts));
    assert.equal(seen.find((e) => e.ts === p3.ts), undefined);
    const st = await control('stats');
    assert.equal(st.pending, 0);
    assert.ok(st.acked >= 4);
  } finally {
    await app.disconnect();
  }
});

test('unacked envelopes are redelivered with retry_attempt; warning disconnects are sent', async () => {
  const { WebSocket } = require('ws');
  await control('settings', { ack_timeout_ms: 200 });
  try {
    const open = await client(APP).apps.connections.open();
    const ws = new WebSocket(open.url);
    const frames = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d))));
    await waitFor(() => frames.find((f) => f.type === 'hello'));
    const p = await client(ALICE).chat.postMessage({ channel: 'C0GENERAL', text: 'ack me later' });
    const first = await waitFor(() => frames.find((f) => f.type === 'events_api' && f.payload.event.ts === p.ts));
    assert.equal(first.retry_attempt, 0);
    assert.equal(first.payload.type, 'event_callback');
    assert.equal(first.payload.event.user, 'U0ALICE');
    const again = await waitFor(() => frames.find((f) => f.envelope_id === first.envelope_id && f.retry_attempt === 1));
    assert.equal(again.retry_reason, 'timeout');
    ws.send(JSON.stringify({ envelope_id: first.envelope_id }));
    await waitFor(async () => (await control('stats')).pending === 0);
    await control('disconnect', { reason: 'warning' });
    const d = await waitFor(() => frames.find((f) => f.type === 'disconnect'));
    assert.equal(d.reason, 'warning');
    ws.terminate();
  } finally {
    await control('settings', { ack_timeout_ms: 3000 });
  }
});
