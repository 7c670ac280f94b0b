// The official Socket.IO JavaScript client against chat-server's accounts
// (docs/PROTOCOL.md, "Accounts"): register, log in, the refusals, a DM kept
// for an account that is offline, its remembered rooms, account:password,
// a second client, and (v3) replies, edits, reactions and deletions.
// Usage: node accounts.js http://127.0.0.1:PORT websocket|polling
// Exits 0 when every check passed; prints the first failure and exits 1.
"use strict";
const assert = require("assert/strict");

const [url, transport] = process.argv.slice(2);
const { tag, open, connected, refused } = require("./harness").harness(url, transport);

async function main() {
  const name = "dana" + tag;
  const password = "a long enough password";

  // Register; the session is an ordinary one.
  const dana = open("/chat", { username: name, password, register: true });
  await connected(dana);
  const s1 = await dana.next("session");
  assert.deepEqual([s1.username, s1.recovered], [name, false]);
  let ack = await dana.ack("room:join", { room: "#ops" });
  assert.equal(ack.ok, true);

  // Nobody else may use the name, online or not.
  assert.match(await refused(open("/chat", { username: name.toUpperCase() })), /^auth_required: /);
  dana.disconnect();
  assert.match(await refused(open("/chat", { username: name })), /^auth_required: /);
  assert.match(await refused(open("/chat", { username: name, password: "not the password" })), /^bad_credentials: /);
  assert.match(await refused(open("/chat", { username: name, password, register: true })), /^username_taken: /);
  assert.match(await refused(open("/chat", { username: "eve" + tag, password: "short", register: true })), /^weak_password: /);

  // A DM to her while she is offline is kept.
  const bob = open("/chat", { username: "bob" + tag });
  await connected(bob);
  ack = await bob.ack("dm:message", { to: name, text: "read this when you are back" });
  assert.deepEqual([ack.ok, ack.queued], [true, true]);

  // She comes back with her password: her room, and the DM replayed.
  const back = open("/chat", { username: name, password });
  await connected(back);
  const s2 = await back.next("session");
  assert.deepEqual([s2.recovered, s2.rooms, s2.missed], [false, ["#ops"], 1]);
  const dm = await back.next("dm:message");
  assert.deepEqual([dm.id, dm.from, dm.text, dm.replayed], [ack.id, "bob" + tag, "read this when you are back", true]);
  const h = await back.ack("history", { with: "bob" + tag });
  assert.deepEqual(h.messages.map((m) => m.id), [ack.id]);

  // (v3) A second client of hers: its own session beside the first, the
  // room shared, read markers synced, both listed; the first stays.
  const second = open("/chat", { username: name, password, client: "js second" });
  await connected(second);
  const s3 = await second.next("session");
  assert.notEqual(s3.session, s2.session);
  assert.deepEqual(s3.rooms, ["#ops"]);
  assert.ok(Array.isArray(s3.markers));
  const dmMarker = s3.markers.find((m) => m.with === "bob" + tag);
  assert.deepEqual([dmMarker.id, dmMarker.unread], [null, 1]);
  ack = await second.ack("room:join", { room: "#two" });
  assert.equal(ack.ok, true);
  assert.deepEqual(await back.next("room:joined"), { room: "#two" });
  ack = await back.ack("read:mark", { with: "bob" + tag, id: dm.id });
  assert.deepEqual(ack, { ok: true, with: "bob" + tag, id: dm.id });
  assert.deepEqual(await second.next("read:marker"), { with: "bob" + tag, id: dm.id });
  const list = await second.ack("session:list", {});
  assert.deepEqual(list.sessions.map((x) => [x.client, x.current, x.live]), [[null, false, true], ["js second", true, true]]);
  assert.ok(!JSON.stringify(list).includes(s2.session), "never a token");
  second.disconnect();

  // (v3) Replies, edits, reactions and deletions, as the official client
  // sends and receives them.
  assert.equal((await bob.ack("room:join", { room: "#ops" })).ok, true);
  const q = await back.ack("room:message", { room: "#ops", text: "is the deploy done?" });
  const r = await bob.ack("room:message", { room: "#ops", text: "yes", replyTo: q.id });
  const reply = await back.next("room:message", (m) => m.id === r.id);
  assert.equal(reply.replyTo, q.id);
  const e = await back.ack("message:edit", { id: q.id, text: "is the deploy finished?" });
  assert.equal(e.ok, true);
  let u = await bob.next("message:update", (x) => x.id === e.id);
  assert.deepEqual([u.kind, u.target, u.text, u.by, u.room], ["edit", q.id, "is the deploy finished?", name, "#ops"]);
  const like = await bob.ack("message:react", { id: q.id, emoji: "👍", on: true });
  u = await back.next("message:update", (x) => x.id === like.id);
  assert.deepEqual([u.kind, u.emoji, u.on, u.by], ["react", "👍", true, "bob" + tag]);
  ack = await bob.ack("message:edit", { id: q.id, text: "not mine" });
  assert.equal(ack.error.code, "forbidden");
  let page = await bob.ack("history", { room: "#ops" });
  const asked = page.messages.find((m) => m.id === q.id);
  assert.equal(asked.text, "is the deploy finished?");
  assert.deepEqual(asked.reactions, [{ emoji: "👍", count: 1, users: ["bob" + tag] }]);
  const gone = await back.ack("message:delete", { id: q.id });
  u = await bob.next("message:update", (x) => x.id === gone.id);
  assert.deepEqual([u.kind, "text" in u], ["delete", false]);
  page = await bob.ack("history", { room: "#ops" });
  const deleted = page.messages.find((m) => m.id === q.id);
  assert.deepEqual([deleted.deleted, "text" in deleted], [true, false]);

  // A new password, and only the new one works.
  ack = await back.ack("account:password", { old: "wrong old one", new: "the next password" });
  assert.equal(ack.error.code, "bad_credentials");
  ack = await back.ack("account:password", { old: password, new: "the next password" });
  assert.equal(ack.ok, true);
  back.disconnect();
  assert.match(await refused(open("/chat", { username: name, password })), /^bad_credentials: /);
  const again = open("/chat", { username: name, password: "the next password" });
  await connected(again);
  again.disconnect();
  bob.disconnect();
  console.log(`accounts over ${transport}: ok`);
}

main().then(() => process.exit(0), (e) => { console.error(`accounts over ${transport}: FAILED`, e); process.exit(1); });
