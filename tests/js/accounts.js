// The official Socket.IO JavaScript client against chat-server's accounts
// (docs/PROTOCOL.md, "Accounts"): register, log in, the refusals, a DM kept
// for an account that is offline, its remembered rooms, account:password.
// Usage: node accounts.js http://127.0.0.1:PORT websocket|polling
// Exits 0 when every check passed; prints the first failure and exits 1.
"use strict";
const { io } = require("socket.io-client");
const assert = require("assert/strict");

const [url, transport, adminToken = "admin-secret"] = process.argv.slice(2);
const tag = transport === "polling" ? "p" : "w";
const opts = (auth, extra = {}) => ({ auth, transports: [transport], reconnection: false, forceNew: true, ...extra });

// A socket that records events so a check can wait for the next one
// (`next("a|b")` waits for either).
function open(ns, auth) {
  const s = io(url + ns, opts(auth));
  s.seen = [];
  s.waiters = [];
  s.onAny((event, payload) => {
    if (event.endsWith(":message") && payload && payload.id) s.lastId = payload.id;
    const i = s.waiters.findIndex((w) => w.event.split("|").includes(event) && w.pred(payload));
    if (i >= 0) s.waiters.splice(i, 1)[0].resolve(payload);
    else s.seen.push([event, payload]);
  });
  s.next = (event, pred = () => true) => {
    const i = s.seen.findIndex(([e, p]) => event.split("|").includes(e) && pred(p));
    if (i >= 0) return Promise.resolve(s.seen.splice(i, 1)[0][1]);
    return new Promise((resolve, reject) => {
      s.waiters.push({ event, pred, resolve });
      setTimeout(() => reject(new Error(`no ${event} on ${ns}`)), 5000);
    });
  };
  s.ack = (event, payload) => s.timeout(5000).emitWithAck(event, payload);
  return s;
}
function connected(s) {
  return new Promise((resolve, reject) => {
    s.once("connect", resolve);
    s.once("connect_error", (e) => reject(e));
  });
}
function refused(s) {
  return new Promise((resolve, reject) => {
    s.once("connect", () => reject(new Error("connected, expected a refusal")));
    s.once("connect_error", (e) => resolve(e.message));
  });
}

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
