// Floods one room for the chat-tui CPU measure of BENCHMARKS.md:
//   node flood.js URL ROOM PREFILL RATE SECONDS
// First PREFILL messages as fast as acks allow (200 in flight), then RATE
// messages a second for SECONDS, sent in 10 ms ticks. Needs `--rate 0`.
const { io } = require("socket.io-client");
const [url, room, prefill, rate, seconds] = [process.argv[2], process.argv[3], +process.argv[4], +process.argv[5], +process.argv[6]];
const s = io(url + "/chat", { auth: { username: "flooder" }, transports: ["websocket"] });
let n = 0;
function send() {
  n++;
  return new Promise((res) => s.emit("room:message", { room, text: `flood ${n}: a line of ordinary length, with a word or two more ${n % 7 === 0 ? "https://example.org/x/" + n : ""}` }, res));
}
s.on("session", async () => {
  await new Promise((r) => s.emit("room:join", { room }, r));
  console.error("joined; prefill", prefill);
  let inflight = [];
  for (let i = 0; i < prefill; i++) {
    inflight.push(send());
    if (inflight.length >= 200) { await Promise.all(inflight); inflight = []; }
  }
  await Promise.all(inflight);
  console.error("prefill done at", Date.now());
  const per = rate / 100;
  const start = Date.now();
  const t = setInterval(() => {
    for (let i = 0; i < per; i++) send();
    if (Date.now() - start >= seconds * 1000) { clearInterval(t); console.error("flood done", n); setTimeout(() => process.exit(0), 500); }
  }, 10);
});
