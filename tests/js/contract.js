// The official Socket.IO JavaScript client against chat-server: every
// client event of docs/PROTOCOL.md and what the contract says comes back.
// Usage: node contract.js http://127.0.0.1:PORT websocket|polling [adminToken]
// Exits 0 when every check passed; prints the first failure and exits 1.
"use strict";
const assert = require("assert/strict");

const [url, transport, adminToken = "admin-secret"] = process.argv.slice(2);
const { tag, open, connected, refused } = require("./harness").harness(url, transport);

async function main() {
  const alice = open("/chat", { username: "alice" + tag });
  const bob = open("/chat", { username: "Bob" + tag });
  await Promise.all([connected(alice), connected(bob)]);
  const session = await alice.next("session");
  assert.equal(session.username, "alice" + tag);
  assert.equal(session.recovered, false);
  assert.equal(typeof session.session, "string");

  assert.match(await refused(open("/chat", { username: "ALICE" + tag })), /^username_taken: /);
  assert.match(await refused(open("/chat", { username: "no spaces" })), /^invalid_username: /);
  assert.equal(await refused(open("/", {})), "Invalid namespace");
  assert.match(await refused(open("/admin", { token: "wrong" })), /^unauthorized: /);

  const admin = open("/admin", { token: adminToken });
  await connected(admin);
  const snap = await admin.next("admin:snapshot");
  assert.equal(snap.online, 2);

  let ack = await alice.ack("room:join", { room: " #General " });
  assert.deepEqual([ack.ok, ack.room, ack.members], [true, "#general", ["alice" + tag]]);
  ack = await bob.ack("room:join", { room: "general" });
  assert.deepEqual(ack.members, ["alice" + tag, "Bob" + tag]);
  const join = await alice.next("presence", (p) => p.event === "join" && p.user === "Bob" + tag);
  assert.equal(join.members, 2);

  ack = await alice.ack("room:message", { room: "#general", text: "hello room" });
  assert.equal(ack.ok, true);
  for (const s of [alice, bob]) {
    const m = await s.next("room:message");
    assert.deepEqual([m.id, m.from, m.room, m.text], [ack.id, "alice" + tag, "#general", "hello room"]);
  }
  ack = await alice.ack("dm:message", { to: "bob" + tag, text: "psst" });
  assert.equal((await bob.next("dm:message")).id, ack.id);
  ack = await alice.ack("global:message", { text: "to all" });
  assert.equal((await alice.next("global:message")).id, ack.id);
  assert.equal((await bob.next("global:message")).id, ack.id);
  ack = await alice.ack("broadcast:message", { text: "to others" });
  assert.equal((await bob.next("broadcast:message")).text, "to others");
  assert.deepEqual(await alice.ack("typing", { room: "#general", typing: true }), { ok: true });
  assert.deepEqual(await bob.next("typing"), { from: "alice" + tag, room: "#general", typing: true });
  ack = await alice.ack("presence:get", {});
  assert.deepEqual([ack.online, ack.users.length], [2, 2]);
  ack = await alice.ack("room:list", {});
  // v3 items also carry the room's settings.
  assert.deepEqual(ack.rooms, [{ room: "#general", members: 2, topic: "", private: false }]);

  for (const [event, payload, code] of [
    ["room:message", { room: "#nope", text: "x" }, "not_member"],
    ["room:message", { room: "#general", text: "\u001b[2J" }, "invalid_characters"],
    ["dm:message", { to: "alice" + tag, text: "me" }, "invalid_target"],
    ["dm:message", { to: "ghost", text: "x" }, "user_not_found"],
    ["room:join", "general", "invalid_payload"],
    ["room:join", { room: "bad room" }, "invalid_room"],
    ["global:message", { text: "   " }, "empty_message"],
    ["no:such:event", {}, "unknown_event"],
  ]) {
    const res = await alice.ack(event, payload);
    assert.equal(res.ok, false, event);
    assert.equal(res.error.code, code, event);
    const e = await alice.next("chat:error");
    assert.deepEqual(e, res.error);
  }
  const ro = await admin.ack("global:message", { text: "x" });
  assert.equal(ro.error.code, "read_only");
  const ev = await admin.next("admin:event", (e) => e.type === "message");
  assert.equal(ev.text, undefined);

  // (v3) What a stock client sees of moderation: its role, blocks both
  // ways, a room's info, a refusal naming the role it needs, a rename.
  assert.deepEqual([session.role, session.blocked], ["guest", []]);
  ack = await bob.ack("user:block", { user: "alice" + tag });
  assert.deepEqual(ack, { ok: true, blocked: ["alice" + tag] });
  let res = await alice.ack("dm:message", { to: "Bob" + tag, text: "hi" });
  assert.equal(res.error.code, "blocked");
  assert.deepEqual(await alice.next("chat:error"), res.error);
  assert.deepEqual((await bob.ack("user:unblock", { user: "alice" + tag })).blocked, []);
  const info = await bob.ack("room:info", { room: "#general" });
  assert.deepEqual([info.ok, info.topic, info.private, info.owners], [true, "", false, []]);
  res = await bob.ack("room:kick", { room: "#general", user: "alice" + tag });
  assert.deepEqual([res.error.code, res.error.context.need], ["forbidden", "op"]);
  ack = await bob.ack("user:rename", { username: "Robert" + tag });
  assert.deepEqual(ack, { ok: true, username: "Robert" + tag });
  const renamed = await alice.next("presence", (p) => p.event === "rename");
  assert.deepEqual([renamed.user, renamed.from], ["Robert" + tag, "Bob" + tag]);
  assert.equal((await bob.ack("user:rename", { username: "Bob" + tag })).ok, true);
  await alice.next("presence", (p) => p.event === "rename" && p.user === "Bob" + tag);

  // Recovery: the transport drops, messages go by, the client resumes.
  const offset = alice.lastId; // the id of the last message received
  alice.io.engine.close();
  await bob.next("presence", (p) => p.event === "disconnect" && p.user === "alice" + tag);
  const missed = [];
  for (let i = 0; i < 3; i++) missed.push((await bob.ack("room:message", { room: "#general", text: "missed " + i })).id);
  missed.push((await bob.ack("dm:message", { to: "alice" + tag, text: "while away" })).id);
  const back = open("/chat", { username: "alice" + tag, session: session.session, offset });
  await connected(back);
  const s2 = await back.next("session");
  assert.deepEqual([s2.recovered, s2.rooms, s2.missed], [true, ["#general"], missed.length]);
  const got = [];
  for (let i = 0; i < missed.length; i++) {
    const m = await back.next("room:message|dm:message");
    assert.equal(m.replayed, true);
    got.push(m.id);
  }
  assert.deepEqual(got, missed, "in their original order");

  back.disconnect();
  await bob.next("presence", (p) => p.event === "disconnect" && p.reason === "client namespace disconnect");
  for (const s of [bob, admin]) s.disconnect();
  console.log(`contract over ${transport}: ok`);
}

main().then(() => process.exit(0), (e) => { console.error(`contract over ${transport}: FAILED`, e); process.exit(1); });
