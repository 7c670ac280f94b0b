// One client stays connected over wss:// while the server reloads its
// certificate. Usage: node tls_reload.js https://localhost:PORT
// Prints "connected" once in; on the line "check" from stdin, checks that
// the same socket is still connected and answers, that a new client over
// long-polling gets in too, prints "still connected" and exits 0.
"use strict";
const { io } = require("socket.io-client");
const readline = require("readline");

const [url] = process.argv.slice(2);
const fail = (why) => {
  console.log("FAIL: " + why);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 60000).unref();

const s = io(url + "/chat", {
  auth: { username: "steady" },
  transports: ["websocket"],
  reconnection: false,
  forceNew: true,
});
let disconnects = 0;
s.on("disconnect", () => disconnects++);
s.once("connect_error", (e) => fail("connect: " + e.message));
s.once("connect", () => {
  const sid = s.id;
  console.log("connected");
  readline.createInterface({ input: process.stdin }).on("line", async (line) => {
    if (line.trim() !== "check") return;
    try {
      if (disconnects !== 0 || !s.connected || s.id !== sid) fail("the socket was dropped");
      const pong = await s.timeout(5000).emitWithAck("ping", {});
      if (!pong.ok) fail("ping: " + JSON.stringify(pong));
      const late = io(url + "/chat", {
        auth: { username: "late" },
        transports: ["polling"],
        reconnection: false,
        forceNew: true,
      });
      await new Promise((resolve, reject) => {
        late.once("connect", resolve);
        late.once("connect_error", reject);
      });
      late.disconnect();
      s.disconnect();
      console.log("still connected");
      process.exit(0);
    } catch (e) {
      fail(e.message);
    }
  });
});
