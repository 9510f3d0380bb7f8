// The operators' console in a real browser (run by .ci/browser.sh, which passes the
// environment below). It starts the release server on a fresh data directory, sets up
// sagas through the JSON API (fetch), then drives Debian's Chromium through the console:
// sign in, see the triage page reload itself until its auto-refresh is paused, resume a
// STUCK cancellation found from the triage page, bulk-abort RETRYING checkouts after a dry
// run and see them on the ABORTED list, quarantine a product, release it and see its
// checkout complete on its page, sign out. Every step asserts what it sees; any console
// error or page error in the browser fails the run.
// A screenshot of each page visited goes to BROWSER_OUT_DIR.
'use strict';

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run .ci/browser.sh)`);
  return v;
};
const BIN = env('CARTWRIGHT_BIN');
const DATA_DIR = env('BROWSER_DATA_DIR');
const OUT_DIR = env('BROWSER_OUT_DIR');
const { chromium } = require(env('PLAYWRIGHT_DIR'));
// Where the README's screenshot of the triage page is written (when set).
const DOCS_SCREENSHOT = process.env.BROWSER_DOCS_SCREENSHOT;

const ADMIN = 'ci-browser-admin-token';
const PAYMENT_SECRET = 'ci-browser-payment-secret';
const PASSWORD = 'correct-horse-9';
const OPERATOR = 'CI';
// Each wait for an outcome gives up after this long: the whole run stays well under the
// two minutes .ci/browser.sh allows.
const WAIT_MS = 15000;

let base;

// ----- the server -----

function startServer() {
  const server = spawn(BIN, [], {
    env: {
      ...process.env,
      RUST_LOG: 'info',
      CARTWRIGHT__SERVER__ADDR: '127.0.0.1:0',
      CARTWRIGHT__STORAGE__PATH: DATA_DIR,
      CARTWRIGHT__AUTH__ADMIN_TOKEN: ADMIN,
      CARTWRIGHT__AUTH__FULFILLMENT_TOKEN: 'ci-browser-fulfillment-token',
      CARTWRIGHT__WEBHOOKS__PAYMENT_SECRET: PAYMENT_SECRET,
      // Cheap password hashing: the scenario registers a few customers.
      CARTWRIGHT__AUTH__ARGON2_MEMORY_KIB: '1024',
      CARTWRIGHT__AUTH__ARGON2_ITERATIONS: '1',
      // A checkout that is RETRYING answers 202 after this wait instead of 2 s.
      CARTWRIGHT__CHECKOUT__SYNC_WAIT_MS: '300',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const log = fs.createWriteStream(path.join(OUT_DIR, 'server.log'));
  server.stderr.pipe(log);
  const lines = readline.createInterface({ input: server.stdout });
  const address = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      log.write(line + '\n');
      const m = line.match(/listening on (\S+)/);
      if (m) resolve(`http://${m[1]}`);
    });
    server.on('exit', (code) => reject(new Error(`the server exited (${code}) before listening; see server.log`)));
  });
  return { server, address };
}

// ----- the JSON API -----

async function api(method, p, { token = ADMIN, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let raw;
  if (body !== undefined) {
    raw = typeof body === 'string' ? body : JSON.stringify(body);
    h['content-type'] = 'application/json';
  }
  const res = await fetch(base + p, { method, headers: h, body: raw, redirect: 'manual' });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, body: json };
}

async function expectApi(want, method, p, opts) {
  const r = await api(method, p, opts);
  const wanted = Array.isArray(want) ? want : [want];
  if (!wanted.includes(r.status)) {
    throw new Error(`${method} ${p}: ${r.status}, wanted ${wanted.join(' or ')}: ${JSON.stringify(r.body)}`);
  }
  return r.body;
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
  console.log(`  ok: ${what}`);
}

async function eventually(what, check) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const saga = (id) => expectApi(200, 'GET', `/admin/v1/sagas/${id}`);

async function sagaReaches(id, state) {
  const s = await eventually(`saga ${id} ${state}`, async () => {
    const s = await saga(id);
    return s.state === state && s;
  });
  assert(true, `saga ${id} is ${state} (API)`);
  return s;
}

async function sagas(query) {
  return (await expectApi(200, 'GET', `/admin/v1/sagas?${query}&limit=100`)).sagas;
}

async function setPolicy(type, step, maxAttempts, backoffMs) {
  await expectApi(200, 'PUT', `/admin/v1/retry-policies/${type}/${step}`, {
    body: { max_attempts: maxAttempts, initial_backoff_ms: backoffMs, multiplier: 1.0, max_backoff_ms: backoffMs },
  });
}

/// A registered customer whose email is verified (the token from the outbox), logged in.
async function customer() {
  const email = `ci-${crypto.randomUUID()}@example.com`;
  const { customer_id } = await expectApi(201, 'POST', '/v1/customers', {
    token: null,
    body: { email, password: PASSWORD, name: 'CI Customer' },
  });
  const mail = await eventually('the verification email', async () => {
    const { notifications } = await expectApi(200, 'GET', '/admin/v1/notifications?kind=email_verification&limit=1000');
    return notifications.find((n) => n.payload.customer_id === customer_id);
  });
  await expectApi(200, 'POST', '/v1/customers/verify-email', {
    token: null,
    body: { token: mail.payload.verification_token },
  });
  const session = await expectApi(201, 'POST', '/v1/sessions', { token: null, body: { email, password: PASSWORD } });
  return session.token;
}

async function product(name) {
  const { category_id } = await expectApi(201, 'POST', '/admin/v1/categories', { body: { name: `${name} shelf` } });
  const p = await expectApi(201, 'POST', '/admin/v1/products', {
    body: { name, description: 'for the browser test', price: '10.00', category_id, initial_stock: 10 },
  });
  return p.product_id;
}

/// A fresh verified customer puts one of `productId` in the cart and checks out with `card`.
async function checkout(productId, card, wantStatus) {
  const token = await customer();
  await expectApi(200, 'POST', '/v1/cart/items', { token, body: { product_id: productId, quantity: 1 } });
  const order = await expectApi(wantStatus, 'POST', '/v1/orders', {
    token,
    body: {
      shipping_address: { name: 'Ada Lovelace', line1: '12 St James Square', city: 'Springfield', postal_code: '12345', country: 'US' },
      payment: { token: card },
    },
  });
  return { token, order };
}

/// The payment gateway's signed webhook: `Cartwright-Signature: t=<unix>,v1=<hex HMAC-SHA256
/// of "<t>.<body>">` (src/operations/webhooks.rs).
async function paymentCaptured(authorizationId, amount) {
  const raw = JSON.stringify({
    id: `evt_${crypto.randomUUID()}`,
    type: 'payment.captured',
    data: { authorization_id: authorizationId, amount },
  });
  const t = Math.floor(Date.now() / 1000);
  const v1 = crypto.createHmac('sha256', PAYMENT_SECRET).update(`${t}.${raw}`).digest('hex');
  return expectApi(200, 'POST', '/webhooks/payment', { token: null, body: raw, headers: { 'cartwright-signature': `t=${t},v1=${v1}` } });
}

// ----- setup -----

/// A captured order paid with tok_refund_flaky (the simulated gateway fails its first three
/// refund attempts), cancelled under a three-attempt refund policy: the cancellation
/// exhausts its attempts and parks STUCK at refund_payment; a resume's fourth attempt
/// succeeds.
async function stuckCancellation() {
  await setPolicy('cancel_order', 'refund_payment', 3, 20);
  const p = await product('Flaky refund');
  const { token, order } = await checkout(p, 'tok_refund_flaky', 201);
  await paymentCaptured(order.payment.authorization_id, order.total);
  await expectApi([200, 202], 'POST', `/v1/orders/${order.order_id}/cancel`, { token, body: { reason: 'changed my mind' } });
  const stuck = await eventually('a STUCK cancel_order saga', async () => (await sagas('state=STUCK&type=cancel_order'))[0]);
  assert(stuck.current_step === 'refund_payment', `the cancellation ${stuck.saga_id} is STUCK at refund_payment`);
  return stuck.saga_id;
}

/// Checkouts with tok_flaky (its first two authorizations time out) under a one-minute
/// backoff: each waits RETRYING at authorize_payment.
async function retryingCheckouts(n) {
  await setPolicy('place_order', 'authorize_payment', 5, 60000);
  const p = await product('Flaky card');
  const ids = [];
  for (let i = 0; i < n; i++) {
    const { order } = await checkout(p, 'tok_flaky', 202);
    ids.push(order.saga_id);
  }
  for (const id of ids) await sagaReaches(id, 'RETRYING');
  return ids;
}

// ----- the browser -----

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  const file = path.join(OUT_DIR, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
}

/// Goes to `p` and screenshots what it shows.
async function visit(page, p, name) {
  const res = await page.goto(base + p);
  await screenshot(page, name);
  return res;
}

const pathOf = (page) => new URL(page.url()).pathname;

async function signIn(page) {
  console.log('sign in');
  await visit(page, '/console', 'sign-in');
  assert(pathOf(page) === '/console/sign-in', '/console sends an anonymous visitor to sign in');
  await page.locator('input[name=token]').fill(ADMIN);
  await page.locator('input[name=name]').fill(OPERATOR);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.waitForLoadState();
  await screenshot(page, 'landing');
  await page.locator('.who').getByText(`(${OPERATOR})`).waitFor();
  assert(true, `signed in as the admin (${OPERATOR})`);
}

async function resumeStuckCancellation(page, sagaId) {
  console.log('resume the STUCK cancellation from the triage page');
  await visit(page, '/console', 'triage');
  assert(pathOf(page) === '/console/triage', '/console lands on the triage page');
  const group = page.locator('[data-testid=triage-groups] tr').filter({ hasText: 'cancel_order' }).filter({ hasText: 'STUCK' });
  await group.first().waitFor();
  assert((await group.count()) === 1, 'one STUCK cancel_order group');
  assert(/refund_payment/.test(await group.innerText()), 'the group names its step, refund_payment');
  if (DOCS_SCREENSHOT) {
    const box = await page.locator('main').boundingBox();
    await page.screenshot({ path: DOCS_SCREENSHOT, clip: { x: 0, y: 0, width: 1280, height: Math.ceil(box.y + box.height + 16) } });
  }
  await group.getByRole('link', { name: 'List them' }).click();
  await page.waitForLoadState();
  await screenshot(page, 'stuck-cancellations');
  assert(pathOf(page) === '/console/sagas', 'the group links to the saga list');
  const link = page.locator(`a[href="/console/sagas/${sagaId}"]`);
  assert((await link.count()) >= 1, 'the list holds the STUCK cancellation');
  await link.first().click();
  await page.waitForLoadState();
  await screenshot(page, 'stuck-saga');
  assert(pathOf(page) === `/console/sagas/${sagaId}`, 'the link opens the saga');
  await expectState(page, 'STUCK');
  await page.getByText('It needs an operator').waitFor();
  await page.getByText('3 of 3 allowed by its retry policy').waitFor();
  assert(true, 'the saga says why it is here: its 3 of 3 attempts are used');
  const timeline = page.locator('h2:text-is("Timeline") + p + table');
  for (const work of ['validate_cancellation', 'cancel_order', 'release_inventory', 'refund_payment']) {
    await timeline.locator('tr').filter({ hasText: work }).first().waitFor();
  }
  assert(/simulated 503 on refund/.test(await timeline.innerText()), "the timeline shows every step and the refund's last error");
  await page.getByRole('button', { name: 'Resume now' }).click();
  await page.waitForLoadState();
  await screenshot(page, 'resumed');
  await page.getByText('Resumed: the parked work runs now.').waitFor();
  assert(true, 'the resume is acknowledged');
  await reloadUntilState(page, 'COMPLETED', 'completed');
  await sagaReaches(sagaId, 'COMPLETED');
}

async function expectState(page, state) {
  const shown = await page.locator('.facts .state').first().innerText();
  assert(shown === state, `the saga page shows ${state} (shows ${shown})`);
}

/// Reloads the saga page it is on until it shows `state`, then screenshots it.
async function reloadUntilState(page, state, name) {
  await eventually(`the saga page shows ${state}`, async () => {
    await page.reload();
    return (await page.locator('.facts .state').first().innerText()) === state;
  });
  await screenshot(page, name);
  assert(true, `after reloads the saga page shows ${state}`);
}

async function bulkAbort(page, ids) {
  console.log('bulk-abort the RETRYING checkouts');
  await visit(page, '/console/bulk?state=RETRYING&type=place_order', 'bulk');
  const filter = page.locator('form', { has: page.getByRole('button', { name: 'Dry run' }) });
  await filter.locator('select[name=action]').selectOption('abort');
  await filter.getByRole('button', { name: 'Dry run' }).click();
  await page.waitForLoadState();
  await screenshot(page, 'bulk-dry-run');
  const confirm = page.getByRole('button', { name: `Abort these ${ids.length} sagas` });
  await confirm.waitFor();
  assert(true, `the dry run counts ${ids.length} sagas`);
  for (const id of ids) assert((await page.getByText(id).count()) >= 1, `the dry run's sample lists ${id}`);
  const confirmForm = page.locator('form', { has: confirm });
  await confirmForm.locator('[name=reason]').fill('CI: flaky card, customers asked to retry');
  await confirm.click();
  await page.waitForLoadState();
  await screenshot(page, 'bulk-running');
  assert(/^\/console\/bulk\/./.test(pathOf(page)), 'the confirm opens the progress page');
  const progress = page.locator('[data-testid=bulk-progress]');
  const field = (name) => progress.locator(`[data-field=${name}]`).innerText();
  await eventually('the bulk action is done', async () => {
    if ((await field('state')).trim() === 'done') return true;
    await page.reload();
    return false;
  });
  await screenshot(page, 'bulk-done');
  const counts = [await field('matched'), await field('done'), await field('skipped'), await field('failed')].map((t) => t.trim());
  assert(counts.join(' ') === `${ids.length} ${ids.length} 0 0`, `the progress shows ${ids.length} matched and done (${counts})`);
  for (const id of ids) await sagaReaches(id, 'ABORTED');
  await visit(page, '/console/sagas?state=ABORTED&type=place_order', 'aborted-checkouts');
  for (const id of ids) {
    const row = page.locator('tr').filter({ has: page.locator(`a[href="/console/sagas/${id}"]`) });
    assert((await row.count()) === 1 && /ABORTED/.test(await row.innerText()), `the ABORTED list shows ${id} ABORTED`);
  }
  await visit(page, '/console/sagas?state=RETRYING&type=place_order', 'retrying-checkouts');
  for (const id of ids) assert((await page.locator(`a[href="/console/sagas/${id}"]`).count()) === 0, `the RETRYING list no longer holds ${id}`);
}

async function quarantineProduct(page) {
  console.log('quarantine a product, see a checkout park PAUSED, release it');
  const p = await product('Disputed stock');
  await visit(page, '/console/quarantine', 'quarantine');
  const form = page.locator('form', { has: page.getByRole('button', { name: 'Pause', exact: true }) });
  await form.locator('select[name=kind]').selectOption('inventory');
  await form.locator('[name=id]').fill(p);
  await form.locator('[name=reason]').fill('CI: stock count disputed');
  await form.getByRole('button', { name: 'Pause', exact: true }).click();
  await page.waitForLoadState();
  await screenshot(page, 'quarantined');
  const row = page.locator('[data-testid=quarantine-list] tr').filter({ hasText: p });
  await row.first().waitFor();
  assert(/stock count disputed/.test(await row.innerText()), 'the quarantine list shows the key and its reason');
  const { keys } = await expectApi(200, 'GET', '/admin/v1/quarantine');
  assert(keys.some((k) => k.kind === 'inventory' && k.key === p), 'the API lists the paused key');

  const { order } = await checkout(p, 'tok_visa', 202);
  assert(order.state === 'PAUSED', `the checkout answers 202 PAUSED (${order.state})`);
  const parked = await sagaReaches(order.saga_id, 'PAUSED');
  assert(parked.current_step === 'reserve_inventory', 'it parked at reserve_inventory');
  await visit(page, `/console/sagas/${order.saga_id}`, 'paused-saga');
  await expectState(page, 'PAUSED');
  await page.getByText('Its current work touches a quarantined key').waitFor();
  assert((await page.locator('.facts').getByText(p).count()) >= 1, 'the saga page names the key it is paused on');

  await visit(page, '/console/quarantine', 'quarantine-list');
  await page.locator('[data-testid=quarantine-list] tr').filter({ hasText: p }).getByRole('button', { name: 'Release' }).click();
  await page.waitForLoadState();
  await screenshot(page, 'released');
  assert((await page.locator('[data-testid=quarantine-list] tr').filter({ hasText: p }).count()) === 0, 'the released key left the list');
  await visit(page, `/console/sagas/${order.saga_id}`, 'released-saga');
  await reloadUntilState(page, 'COMPLETED', 'released-saga-completed');
  await sagaReaches(order.saga_id, 'COMPLETED');
}

/// The triage page reloads itself every 10 s (app.js); *Pause auto-refresh* stops it and
/// *Resume auto-refresh* starts it again. Playwright's clock stands for the 10 s, in a
/// context of its own (the clock is the whole context's) signed in with the same cookie.
/// Every main-frame navigation is counted: the one a paused page would start is seen
/// before the load of a later one.
async function autoRefresh(browser, signedIn, problems) {
  console.log('the triage page reloads itself, until paused');
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, storageState: await signedIn.storageState() });
  try {
    const page = await context.newPage();
    watch(page, problems);
    let navigations = 0;
    page.on('request', (r) => {
      if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations += 1;
    });
    await page.clock.install();
    await visit(page, '/console/triage', 'auto-refresh');
    // From here on the page's time moves only when the test moves it.
    await page.clock.pauseAt(Date.now() + 1000);
    const toggle = page.locator('#refresh-toggle');
    await toggle.waitFor();
    assert((await toggle.innerText()) === 'Pause auto-refresh', 'the triage page offers to pause its auto-refresh');
    assert(navigations === 1, 'one load so far');

    const mark = () => page.evaluate(() => { window.__notReloaded = true; });
    const marked = () => page.evaluate(() => window.__notReloaded === true);
    await mark();
    let loaded = page.waitForEvent('load');
    await page.clock.runFor(11000);
    await loaded;
    assert(navigations === 2 && !(await marked()), 'after 11 s the page has reloaded by itself');

    await toggle.click();
    assert((await toggle.innerText()) === 'Resume auto-refresh', 'the button now offers to resume');
    await mark();
    await page.clock.runFor(25000);
    // A reload the paused page started could still be on its way here: the count of loads
    // after the next one makes sure there was none.
    assert(await marked(), 'paused, the page is the same document 25 s later');

    await toggle.click();
    assert((await toggle.innerText()) === 'Pause auto-refresh', 'resumed');
    loaded = page.waitForEvent('load');
    await page.clock.runFor(11000);
    await loaded;
    assert(navigations === 3, `resumed, it reloads again; paused, it never did (3 loads in all, not ${navigations})`);
    await screenshot(page, 'auto-refresh-resumed');
  } finally {
    await context.close();
  }
}

async function signOut(page) {
  console.log('sign out');
  await page.getByRole('button', { name: 'Sign out' }).first().click();
  await page.waitForLoadState();
  await visit(page, '/console', 'signed-out');
  assert(pathOf(page) === '/console/sign-in', 'after sign-out /console sends to the sign-in page');
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
}

/// Answers confirm dialogs (data-confirm forms) yes, as an operator would, and records
/// every console error and uncaught page error in `problems`.
function watch(page, problems) {
  page.setDefaultTimeout(WAIT_MS);
  page.on('dialog', (d) => d.accept());
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console error on ${page.url()}: ${m.text()} (${m.location().url})`);
  });
  page.on('pageerror', (e) => problems.push(`page error on ${page.url()}: ${e.message}`));
}

// ----- the run -----

async function main() {
  const started = Date.now();
  const { server, address } = startServer();
  // `timeout` in .ci/browser.sh ends a run that hangs: the server goes with it.
  for (const signal of ['SIGTERM', 'SIGINT']) {
    process.on(signal, () => {
      server.kill('SIGKILL');
      console.error(`BROWSER TEST FAILED: stopped by ${signal} (over its time limit?)`);
      process.exit(1);
    });
  }
  let browser;
  const problems = [];
  try {
    base = await address;
    console.log(`server at ${base}; setting up sagas through the API`);
    const stuckId = await stuckCancellation();
    const retryingIds = await retryingCheckouts(3);

    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      headless: true,
      // The machine has no network: without these Chromium waits on background connections.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    watch(page, problems);

    await signIn(page);
    await autoRefresh(browser, context, problems);
    await resumeStuckCancellation(page, stuckId);
    await bulkAbort(page, retryingIds);
    await quarantineProduct(page);
    await signOut(page);
  } finally {
    if (browser) await browser.close();
    server.kill('SIGTERM');
  }
  if (problems.length > 0) {
    throw new Error(`the browser reported errors:\n  ${problems.join('\n  ')}`);
  }
  console.log(`browser scenario passed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

main().catch((e) => {
  console.error(`BROWSER TEST FAILED: ${e.stack || e}`);
  process.exit(1);
});
