// The browser half of scripts/e2e-browser.sh: drives headless Chromium over
// the DevTools protocol against a running `muxscope --headless --control`.
//
//   node --experimental-websocket scripts/e2e-browser.mjs \
//        CHROMIUM ECHO_HOST:PORT http://CONTROL_HOST:PORT/ OUT_DIR
//
// 1. A TCP client connects to the echo port and gets its bytes echoed.
// 2. Chromium loads the viewer page (with ?e2e=1, so the page publishes
//    where egui drew its widgets as window.muxscopeWidgets).
// 3. The client's row (its peer address) must appear; screenshot.
// 4. The row is clicked and the inspector's "Kick (reset)" button is
//    clicked, with real mouse events at the widgets' positions.
// 5. The client's socket must be closed by the server; screenshot.
// 6. With RECORDING (the server's own --record file): File → Open
//    recording… in the page, the file given to the browser's file chooser,
//    and the recorded client's row must play back on the timeline;
//    screenshot.
// Exits 0 on success, 1 with a reason otherwise. Every wait is bounded.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const [chromium, echoAddr, pageUrl, outDir, recording] = process.argv.slice(2);
if (!outDir) {
  console.error("usage: e2e-browser.mjs CHROMIUM ECHO_ADDR PAGE_URL OUT_DIR");
  process.exit(2);
}
const STEP_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (...a) => console.log("[e2e]", ...a);

let browser;
let profile;
const consoleLines = [];
function removeProfile() {
  try {
    if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 5 });
  } catch (e) {
    log(`could not remove ${profile}: ${e.code}`);
  }
}
// Stop Chromium (it writes to its profile until it exits), then remove it.
async function cleanup() {
  if (browser && browser.exitCode === null) {
    const exited = new Promise((r) => browser.once("exit", r));
    browser.kill("SIGTERM");
    await Promise.race([exited, sleep(5000)]);
  }
  removeProfile();
}
function fail(why) {
  console.error(`[e2e] FAIL: ${why}`);
  if (consoleLines.length) {
    console.error(`[e2e] page console (last 20 lines):`);
    for (const l of consoleLines.slice(-20)) console.error(`[e2e]   ${l}`);
  }
  if (browser && browser.exitCode === null) browser.kill("SIGKILL");
  removeProfile();
  process.exit(1);
}
setTimeout(() => fail("overall time limit (180 s)"), 180_000).unref();

// Poll `fn` until it gives a value; on timeout fail, or give null if optional.
async function waitFor(what, fn, { ms = STEP_MS, optional = false } = {}) {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > until) {
      if (optional) return null;
      fail(`timed out waiting for ${what}`);
    }
    await sleep(200);
  }
}

// ---- 1. the TCP client -----------------------------------------------------
const [echoHost, echoPort] = [echoAddr.slice(0, echoAddr.lastIndexOf(":")), Number(echoAddr.slice(echoAddr.lastIndexOf(":") + 1))];
const client = net.connect({ host: echoHost, port: echoPort });
let echoed = "";
let clientClosed = null;
client.on("data", (d) => (echoed += d.toString()));
client.on("error", (e) => (clientClosed ??= `error ${e.code}`));
client.on("close", () => (clientClosed ??= "closed"));
await new Promise((resolve, reject) => {
  client.once("connect", resolve);
  client.once("error", reject);
}).catch((e) => fail(`client cannot connect to ${echoAddr}: ${e.message}`));
const peer = `${client.localAddress}:${client.localPort}`;
client.write("hello from the e2e client\n");
await waitFor("the echo", () => echoed.includes("hello from the e2e client"));
log(`TCP client ${peer} connected and echoed`);

// ---- 2. the browser --------------------------------------------------------
profile = mkdtempSync(path.join(os.tmpdir(), "muxscope-e2e-chromium-"));
browser = spawn(
  chromium,
  [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    `--user-data-dir=${profile}`,
    "--remote-debugging-port=0",
    "--window-size=1280,800",
    "about:blank",
  ],
  { stdio: ["ignore", "ignore", "pipe"] },
);
let browserErr = "";
browser.stderr.on("data", (d) => (browserErr += d.toString()));
browser.on("exit", (code) => {
  if (code !== 0 && code !== null) log(`chromium exited ${code}: ${browserErr.slice(-2000)}`);
});
const portFile = path.join(profile, "DevToolsActivePort");
await waitFor("Chromium's DevTools port", () => existsSync(portFile) && readFileSync(portFile, "utf8").includes("\n"));
const devtoolsPort = readFileSync(portFile, "utf8").split("\n")[0];
const targets = await waitFor("a page target", async () => {
  try {
    const list = await (await fetch(`http://127.0.0.1:${devtoolsPort}/json/list`)).json();
    return list.find((t) => t.type === "page") && list;
  } catch {
    return null;
  }
});
const page = targets.find((t) => t.type === "page");
const cdp = new WebSocket(page.webSocketDebuggerUrl);
await new Promise((resolve, reject) => {
  cdp.onopen = resolve;
  cdp.onerror = () => reject(new Error("DevTools socket failed"));
}).catch((e) => fail(e.message));
let nextId = 1;
const pending = new Map();
let fileChooser = null;
cdp.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) {
    const { resolve, reject } = pending.get(msg.id);
    pending.delete(msg.id);
    msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result);
  } else if (msg.method === "Page.fileChooserOpened") {
    fileChooser = msg.params;
  } else if (msg.method === "Runtime.consoleAPICalled") {
    consoleLines.push(`${msg.params.type}: ${msg.params.args.map((a) => a.value ?? a.description ?? "").join(" ")}`);
  } else if (msg.method === "Runtime.exceptionThrown") {
    consoleLines.push(`exception: ${msg.params.exceptionDetails.exception?.description ?? msg.params.exceptionDetails.text}`);
  }
};
const send = (method, params = {}) =>
  new Promise((resolve, reject) => {
    const id = nextId++;
    pending.set(id, { resolve, reject });
    cdp.send(JSON.stringify({ id, method, params }));
  });

await send("Runtime.enable");
await send("Page.enable");
await send("Emulation.setDeviceMetricsOverride", { width: 1280, height: 800, deviceScaleFactor: 1, mobile: false });
const url = new URL(pageUrl);
url.searchParams.set("e2e", "1");
log(`loading ${url.href}`);
await send("Page.navigate", { url: url.href });

async function widgets() {
  const r = await send("Runtime.evaluate", {
    expression: "JSON.stringify(window.muxscopeWidgets || [])",
    returnByValue: true,
  });
  return JSON.parse(r.result.value);
}
async function screenshot(name) {
  const r = await send("Page.captureScreenshot", { format: "png" });
  const file = path.join(outDir, name);
  writeFileSync(file, Buffer.from(r.data, "base64"));
  log(`screenshot ${file}`);
}
async function click(w, what) {
  const x = w.x + w.w / 2;
  const y = w.y + w.h / 2;
  log(`clicking ${what} "${w.text}" (${w.role}) at ${x.toFixed(0)},${y.toFixed(0)}`);
  await send("Input.dispatchMouseEvent", { type: "mouseMoved", x, y });
  await sleep(100);
  await send("Input.dispatchMouseEvent", { type: "mousePressed", x, y, button: "left", clickCount: 1 });
  await sleep(50);
  await send("Input.dispatchMouseEvent", { type: "mouseReleased", x, y, button: "left", clickCount: 1 });
}

// ---- 3. the client's row -----------------------------------------------------
const attached = await waitFor(
  "the viewer to attach",
  async () => (await widgets()).find((w) => /attached to ws:\/\//.test(w.text)),
  { optional: true },
);
log(`status line: "${attached?.text}"`);
const row = await waitFor(`the client's row (${peer})`, async () => (await widgets()).find((w) => w.text.includes(peer)));
log(`row for ${peer} is drawn at ${row.x.toFixed(0)},${row.y.toFixed(0)} (${row.role})`);
await sleep(300);
await screenshot("e2e-1-client-row.png");

// ---- 4. select it, kick it ---------------------------------------------------
// Cell texts are selectable labels, which take clicks themselves; click the
// row in the gap between the peer cell's text and the next cell's.
const rowCells = (await widgets())
  .filter((w) => Math.abs(w.y - row.y) < 4 && w.x > row.x + row.w)
  .sort((a, b) => a.x - b.x);
const gapX = rowCells.length ? (row.x + row.w + rowCells[0].x) / 2 : row.x + row.w + 6;
await click({ ...row, x: gapX - 1, w: 2, text: `gap right of ${row.text}` }, "the client's row");
await sleep(300);
await screenshot("e2e-2-row-selected.png");
const kick = await waitFor("a Kick (reset) button", async () =>
  (await widgets()).find((w) => w.text === "Kick (reset)" && w.role === "Button"),
);
if (clientClosed) fail(`the client was closed before the kick (${clientClosed})`);
await click(kick, "the inspector's button");

// ---- 5. the client's socket is closed --------------------------------------
await waitFor("the client's socket to close", () => clientClosed);
log(`client socket: ${clientClosed} (server kicked it)`);
const closedRow = await waitFor(
  "the row to show the kick",
  async () => (await widgets()).find((w) => /kicked/i.test(w.text)),
  { ms: 5000, optional: true },
);
if (closedRow) log(`viewer shows: "${closedRow.text}"`);
await sleep(300);
await screenshot("e2e-3-after-kick.png");

// ---- 6. the same session, recorded by the server, opened in the page -------
if (recording) {
  await send("Page.setInterceptFileChooserDialog", { enabled: true });
  const fileMenu = await waitFor("the File menu", async () =>
    (await widgets()).find((w) => w.text === "File" && w.role === "Button"),
  );
  await click(fileMenu, "the menu");
  await sleep(300);
  const openItem = await waitFor("File → Open recording…", async () =>
    (await widgets()).find((w) => w.text === "Open recording…"),
  );
  await click(openItem, "the menu item");
  const chooser = await waitFor("the browser's file chooser", () => fileChooser);
  log(`file chooser opened (${chooser.mode}); giving it ${recording}`);
  await send("DOM.setFileInputFiles", { files: [recording], backendNodeId: chooser.backendNodeId });
  await waitFor("the timeline's Play button", async () => (await widgets()).find((w) => w.text === "▶ Play"));
  // The bar settles once the file is indexed (its "indexing…" line goes):
  // find the button again where it is drawn now.
  await sleep(700);
  const play = (await widgets()).find((w) => w.text === "▶ Play");
  const speed = (await widgets()).find((w) => /recording .*muxrec/.test(w.text));
  log(`status line: "${speed?.text}"`);
  await click(play, "the timeline");
  const replayed = await waitFor(
    `the recorded client's row (${peer}) on the timeline`,
    async () => (await widgets()).find((w) => w.text.includes(peer)),
    { ms: 15_000, optional: true },
  );
  await sleep(500);
  await screenshot("e2e-4-recording-in-the-page.png");
  if (!replayed) {
    for (const w of (await widgets()).filter((w) => w.y > 690)) log(`  timeline widget: "${w.text}" (${w.role})`);
    for (const l of consoleLines.slice(-10)) log(`  console: ${l}`);
    fail(`the recorded client's row (${peer}) never played back (see the screenshot)`);
  }
  log(`the recording plays back: row ${replayed.text}`);
}

// ---- 7. a layout change outlives a reload ---------------------------------
// The viewer saves its layout (RON) in the browser's local storage every
// 2 s and arranges itself from it on the next load. Untick one lint in
// View → Lints; after a reload and another save, the storage must still
// have it unticked, which only a restored layout can write.
const storedLayout = async () => {
  const r = await send("Runtime.evaluate", {
    expression: 'localStorage.getItem("muxscope-layout")',
    returnByValue: true,
  });
  return r.result.value || "";
};
const silentOff = (ron) => /allowed:\s*\[[^\]]*SilentClient/.test(ron);
if (silentOff(await storedLayout())) fail("silent-client was already off before the test unticked it");
await click(await waitFor("the View menu", async () => (await widgets()).find((w) => w.text === "View" && w.role === "Button")), "the menu");
await sleep(300);
await click(await waitFor("View → Lints", async () => (await widgets()).find((w) => w.text === "Lints")), "the submenu");
await sleep(300);
await click(await waitFor("the silent-client tick", async () => (await widgets()).find((w) => w.text === "silent-client")), "the lint");
await sleep(300);
await send("Input.dispatchKeyEvent", { type: "keyDown", key: "Escape", code: "Escape", windowsVirtualKeyCode: 27 });
await send("Input.dispatchKeyEvent", { type: "keyUp", key: "Escape", code: "Escape", windowsVirtualKeyCode: 27 });
const before = await waitFor("the layout with silent-client off in local storage", async () =>
  silentOff(await storedLayout()) ? await storedLayout() : null,
);
log(`local storage has silent-client off (${before.length} B of RON)`);
await send("Page.reload", {});
await waitFor("the reloaded viewer's File menu", async () =>
  (await widgets()).find((w) => w.text === "File" && w.role === "Button"),
);
// Past the next save (2 s): what is stored now was written by the
// reloaded page.
await sleep(3000);
if (!silentOff(await storedLayout())) fail("after a reload the layout lost its change: the stored layout has silent-client on again");
const complaint = (await widgets()).find((w) => /Could not restore/.test(w.text));
if (complaint) fail(`the reloaded viewer could not read its layout: ${complaint.text}`);
log("after a reload the layout still has silent-client off");

if (consoleLines.length) {
  log(`page console (${consoleLines.length} lines, last 10):`);
  for (const l of consoleLines.slice(-10)) log(`  ${l}`);
}
log(
  "PASS: the row appeared in the browser and a Kick clicked there closed the client's socket" +
    (recording ? "; the server's recording of it opened and played in the page" : "") +
    "; a layout change survived a reload",
);
cdp.close();
await cleanup();
process.exit(0);
