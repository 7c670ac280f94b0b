// Clients that emit right at connect, the way most client code is written:
// `io(url, {auth}).emit("room:join", …, cb)`. The client library queues the
// emit and sends it right after the namespace CONNECT; every one of them
// must be answered.
// Usage: node first_event.js http://127.0.0.1:PORT websocket|polling COUNT
// Prints "first events: A acked of N" and exits 0 only when A == N.
"use strict";
const { io } = require("socket.io-client");

const [url, transport, countArg] = process.argv.slice(2);
const count = Number(countArg || 500);
const BATCH = 50;

function one(i) {
  return new Promise((resolve) => {
    const s = io(url + "/chat", {
      transports: [transport],
      auth: { username: `first${transport[0]}${i}` },
      reconnection: false,
      forceNew: true,
    });
    s.timeout(10000).emit("room:join", { room: "#first" }, (err, ack) => {
      s.disconnect();
      resolve(!err && ack && ack.ok === true);
    });
  });
}

async function main() {
  let acked = 0;
  for (let start = 0; start < count; start += BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(start + BATCH, count); i++) batch.push(one(i));
    acked += (await Promise.all(batch)).filter(Boolean).length;
  }
  console.log(`first events: ${acked} acked of ${count}`);
  process.exit(acked === count ? 0 : 1);
}
main().catch((e) => {
  console.error(e);
  process.exit(1);
});
