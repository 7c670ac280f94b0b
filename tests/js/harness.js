// What the scripts of tests/js share: sockets that record what they
// receive so a check can wait for the next event, and the outcome of a
// connect. `harness(url, transport)` returns them for one server and one
// transport ("websocket" or "polling").
"use strict";
const { io } = require("socket.io-client");

function harness(url, transport) {
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
  return { tag, opts, open, connected, refused };
}

module.exports = { harness };
