// SPDX-License-Identifier: AGPL-3.0-or-later
// Checks the Discord test server with discord.js (pinned in package-lock.json): a bot account
// logs in through /gateway/bot and the Gateway, receives a human's MESSAGE_CREATE, sends,
// reacts, edits and deletes, uses a webhook, survives a dropped connection (resume with
// replay), op 7 Reconnect and op 9 Invalid Session, waits out an injected 429, and gets the
// real errors for a bad token and a disallowed intent. If discord.js cannot use the server,
// the server is wrong. Prints "ok <step>" per step and "ALL OK" at the end.
//
// Usage: node sdk_check.js http://127.0.0.1:PORT
'use strict';

const { Client, GatewayIntentBits, Events, WebhookClient } = require('discord.js');

const BASE = process.argv[2];
const GENERAL = '1300000000000000001';
const HELPER = '1200000000000000002';
const LIMIT_MS = 15000;

function ok(step) {
  process.stdout.write(`ok ${step}\n`);
}
function fail(msg) {
  throw new Error(msg);
}
function within(promise, what, ms = LIMIT_MS) {
  let t;
  return Promise.race([promise, new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`timed out waiting for ${what}`)), ms);
  })]).finally(() => clearTimeout(t));
}
function once(emitter, event, pred = () => true) {
  return new Promise((resolve) => {
    const f = (...a) => {
      if (pred(...a)) {
        emitter.off(event, f);
        resolve(a);
      }
    };
    emitter.on(event, f);
  });
}
async function api(method, path, body, token = 'alice-token') {
  const r = await fetch(`${BASE}/api/v10${path}`, { method, headers: { Authorization: token,
    'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
async function control(path, body) {
  const r = await fetch(`${BASE}/_test${path}`, { method: body ? 'POST' : 'GET',
    headers: { 'Content-Type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  return r.json();
}
function newClient(extraIntents = []) {
  return new Client({
    intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages,
      GatewayIntentBits.MessageContent, GatewayIntentBits.GuildMessageReactions, ...extraIntents],
    rest: { api: `${BASE}/api`, version: '10', timeout: 10000 },
  });
}

async function main() {
  const client = newClient();
  const ready = once(client, Events.ClientReady);
  await within(client.login('helper-bot-token'), 'login');
  await within(ready, 'ready');
  if (client.user.id !== HELPER) fail('wrong user');
  const general = client.channels.cache.get(GENERAL);
  if (!general || general.name !== 'general') fail('general channel not cached from GUILD_CREATE');
  ok('login, READY and GUILD_CREATE');

  // A human posts; the bot sees it with its content.
  let seen = once(client, Events.MessageCreate, (m) => m.content === 'hello from alice');
  const posted = await api('POST', `/channels/${GENERAL}/messages`, { content: 'hello from alice' });
  if (posted.status !== 200) fail(`alice post ${posted.status}`);
  const [got] = await within(seen, 'MESSAGE_CREATE');
  if (got.id !== posted.body.id || got.author.username !== 'alice' || got.guildId !== client.guilds.cache.first().id)
    fail('message fields');
  ok('receives MESSAGE_CREATE with content');

  // The bot sends, replies, reacts, edits, deletes.
  const mine = await within(general.send('hi from discord.js'), 'send');
  const reply = await within(got.reply({ content: 'a reply', allowedMentions: { parse: [] } }), 'reply');
  if (reply.reference?.messageId !== got.id) fail('reply reference');
  const reacted = once(client, Events.MessageReactionAdd, (r, u) => u.id === HELPER);
  await within(got.react('👍'), 'react');
  await within(reacted, 'MESSAGE_REACTION_ADD');
  const hist = await control(`/channels/${GENERAL}/messages`);
  const a = hist.find((m) => m.id === got.id);
  if (!a.reactions || a.reactions[0].emoji.name !== '👍' || a.reactions[0].count !== 1) fail('reaction stored');
  if (!hist.find((m) => m.id === mine.id && m.content === 'hi from discord.js')) fail('send stored');
  const updated = once(client, Events.MessageUpdate, (o, n) => n.id === mine.id);
  await within(mine.edit('edited by discord.js'), 'edit');
  const [, n] = await within(updated, 'MESSAGE_UPDATE');
  if (n.content !== 'edited by discord.js' || !n.editedTimestamp) fail('edit');
  const deleted = once(client, Events.MessageDelete, (m) => m.id === mine.id);
  await within(mine.delete(), 'delete');
  await within(deleted, 'MESSAGE_DELETE');
  const fetched = await within(general.messages.fetch({ limit: 10 }), 'history');
  if (fetched.has(mine.id) || !fetched.has(got.id)) fail('history after delete');
  ok('send, reply, react, edit, delete, history');

  // A webhook: created by the bot, executed with a username and avatar.
  const hook = await within(general.createWebhook({ name: 'trestle-bridge' }), 'createWebhook');
  const wc = new WebhookClient({ id: hook.id, token: hook.token }, { rest: { api: `${BASE}/api` } });
  seen = once(client, Events.MessageCreate, (m) => m.webhookId === hook.id);
  const wm = await within(wc.send({ content: 'via webhook', username: 'Carol (bridge)',
    avatarURL: 'https://example.org/carol.png', allowedMentions: { parse: [] } }), 'webhook send');
  const [wmsg] = await within(seen, 'webhook MESSAGE_CREATE');
  if (wmsg.author.username !== 'Carol (bridge)' || wm.id !== wmsg.id) fail('webhook author');
  await within(wc.editMessage(wm.id, { content: 'via webhook, edited' }), 'webhook edit');
  await within(wc.deleteMessage(wm.id), 'webhook delete');
  const hooks = await within(general.fetchWebhooks(), 'fetchWebhooks');
  if (!hooks.has(hook.id)) fail('webhook list');
  wc.destroy();
  ok('webhook create, execute with username, edit, delete, list');

  // Dropped connection: resume with replay of what was sent meanwhile.
  const resumed = once(client, Events.ShardResume);
  seen = once(client, Events.MessageCreate, (m) => m.content === 'while away');
  await control('/gateway/drop', { user: HELPER });
  await api('POST', `/channels/${GENERAL}/messages`, { content: 'while away' });
  await within(resumed, 'resume after drop', 60000);
  await within(seen, 'replayed MESSAGE_CREATE', 30000);
  let log = (await control('/gateway/log')).log;
  if (!log.some((e) => e.what === 'resume' && e.path === '/resume-gateway')) fail('resume not on resume_gateway_url');
  ok('resume after a dropped connection replays missed dispatches');

  // op 7 Reconnect.
  const resumed2 = once(client, Events.ShardResume);
  await control('/gateway/reconnect', { user: HELPER });
  await within(resumed2, 'resume after op 7', 60000);
  ok('op 7 reconnect resumes');

  // op 9 Invalid Session (not resumable): a fresh identify.
  const nIdent = (l) => l.filter((e) => e.what === 'identify').length;
  const before = nIdent((await control('/gateway/log')).log);
  await control('/gateway/invalidate', { user: HELPER, resumable: false });
  await within((async () => {
    for (;;) {
      log = (await control('/gateway/log')).log;
      if (nIdent(log) > before) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  })(), 'identify after op 9', 60000);
  seen = once(client, Events.MessageCreate, (m) => m.content === 'after op 9');
  await within((async () => {
    // The message must be dispatched to the new session: wait until it is live.
    for (;;) {
      const s = await control('/gateway/sessions');
      if (s.sessions.some((x) => x.user === HELPER && x.live && x.resumable)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  })(), 'new session', 30000);
  await api('POST', `/channels/${GENERAL}/messages`, { content: 'after op 9' });
  await within(seen, 'MESSAGE_CREATE after op 9', 30000);
  ok('op 9 invalid session re-identifies');

  // An injected 429 is waited out by discord.js' REST client.
  await control('/ratelimit', { method: 'POST', path: `^/channels/${GENERAL}/messages$`,
    count: 1, retry_after_ms: 700 });
  const rl = await within(general.send('after a 429'), 'send after 429');
  const reqs = await control('/requests');
  if (!reqs.requests.some((r) => r.status === 429)) fail('429 not served');
  if (reqs.violations.length) fail('violations: ' + JSON.stringify(reqs.violations));
  if (!rl.id) fail('send after 429');
  ok('429 with retry_after honoured by discord.js');
  await client.destroy();

  // Bad token: /gateway/bot answers 401, discord.js reports TokenInvalid.
  const bad = newClient();
  try {
    await within(bad.login('wrong-token'), 'bad login');
    fail('bad token accepted');
  } catch (e) {
    if (e.code !== 'TokenInvalid') throw e;
  }
  await bad.destroy();
  ok('bad token refused');

  // A bot without the Message Content switch asks for it: close 4014.
  const noc = newClient();
  try {
    await within(noc.login('nocontent-bot-token'), 'nocontent login', 30000);
    fail('disallowed intent accepted');
  } catch (e) {
    if (!/disallowed intents/i.test(String(e.message)) && e.code !== 'DisallowedIntents') throw e;
  }
  await noc.destroy();
  ok('disallowed intent closes with 4014');
  process.stdout.write('ALL OK\n');
}

main().then(() => process.exit(0), (e) => {
  process.stdout.write(`FAILED ${e && e.stack}\n`);
  process.exit(1);
});
