// Drives Converse.js in Debian's Chromium for tests/e2e/test_browser.py.
//
// One JSON command a line on stdin, one JSON answer a line on stdout ({"ok": ...} or
// {"error": ...}). Playwright never downloads a browser here: it launches the Chromium the
// test names (Debian's /usr/bin/chromium). Every wait is for a condition, bounded by the
// command's timeout (milliseconds). What the page logs goes to stderr (Converse at
// loglevel debug logs each frame it sends and receives).
import readline from "node:readline";
import { chromium } from "playwright-core";

let browser = null;
let context = null;
let page = null;

// `promise`, or an error naming `what` once `timeout` ms have passed.
function within(promise, timeout, what) {
    let timer;
    const expired = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what}: no result in ${timeout} ms`)), timeout);
    });
    return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const commands = {
    // Start Chromium. host_rules maps names (and ports) to loopback, as DNS and a reverse
    // proxy on port 443 would; the server's certificates are self-signed.
    async launch({ executable, host_rules = null, timeout }) {
        const args = ["--ignore-certificate-errors"];
        if (host_rules) args.push(`--host-rules=${host_rules}`);
        browser = await chromium.launch({ executablePath: executable, headless: true, args,
                                          timeout });
        return browser.version();
    },

    // Open the page in a fresh context and let Converse log in with `settings`.
    async login({ url, settings, timeout }) {
        context = await browser.newContext({ ignoreHTTPSErrors: true });
        page = await context.newPage();
        page.on("console", (msg) => process.stderr.write(`console ${msg.type()}: ${msg.text()}\n`));
        page.on("pageerror", (err) => process.stderr.write(`pageerror: ${err}\n`));
        await page.goto(url, { timeout });
        await page.waitForFunction(() => typeof window.startConverse === "function",
                                   null, { timeout });
        await page.evaluate((s) => { window.startConverse(s); }, settings);
        await page.waitForFunction(() => window.jabberappTest.connected, null, { timeout });
        return page.evaluate(() => ({
            transport: window.jabberappTest.transport,
            jid: window.jabberappTest.api.connection.get().jid,
        }));
    },

    // Open a chat with `to` and send `body` the way a user does: type it, press Enter.
    async send({ to, body, timeout }) {
        // (resolves to nothing: the chat model itself is not serialisable)
        await within(page.evaluate(async (jid) => {
            await window.jabberappTest.api.chats.open(jid, {}, true);
        }, to), timeout, `opening the chat with ${to}`);
        const textarea = page.locator(`converse-chat[jid="${to}"] .chat-textarea`);
        await textarea.fill(body, { timeout });
        await textarea.press("Enter", { timeout });
        return true;
    },

    // Wait until the chat with `from` shows a message with `body`, and Converse's own
    // message event reported it.
    async wait_message({ from, body, timeout }) {
        await page.locator(`converse-chat[jid="${from}"] .chat-msg__text`, { hasText: body })
            .first().waitFor({ state: "visible", timeout });
        return page.evaluate(({ from, body }) => window.jabberappTest.messages.some(
            (m) => m.from.split("/")[0] === from && m.body === body), { from, body });
    },

    // Close the page: Converse's connection ends with it.
    async finish() {
        if (context) await context.close();
        context = page = null;
        return true;
    },

    async close() {
        if (browser) await browser.close();
        browser = null;
        return true;
    },
};

const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
    const { op, ...args } = JSON.parse(line);
    let answer;
    try {
        answer = { ok: await commands[op](args) };
    } catch (err) {
        answer = { error: String(err && err.stack || err) };
    }
    process.stdout.write(JSON.stringify(answer) + "\n");
    if (op === "close") break;
}
if (browser) await browser.close();
