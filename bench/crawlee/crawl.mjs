// Crawlee's PlaywrightCrawler on the fixture marketplace: the contender scripts/bench.sh measures
// against the farm. Crawlee's defaults otherwise (session pool, fingerprints, a new page per
// request, browser retired after 100 pages, default dataset persisted to local disk).
//
//   BENCH_URLS=urls.txt BENCH_CONCURRENCY=4 CRAWLEE_STORAGE_DIR=/tmp/x node crawl.mjs
//
// Prints one JSON line: pages, ready, not_ready, errors, wall_s, done_epoch_ms.

import { readFileSync } from 'node:fs';
import { PlaywrightCrawler, log } from '@crawlee/playwright';
import { chromium } from 'playwright';

const READY = 'main#listing[data-ready]';
// The flags of src/render/cdp.rs (chromiumoxide adds the --disable-* defaults itself).
const FLAGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
];

const started = Date.now();
const urls = readFileSync(process.env.BENCH_URLS, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
const concurrency = Number(process.env.BENCH_CONCURRENCY || 4);
const tally = { pages: 0, ready: 0, not_ready: 0, errors: 0 };
let doneAt = started;
log.setLevel(log.LEVELS.WARNING);

/** Reads the listing's fields in one round trip, as sites/fixture.toml describes them. */
function extract() {
    const text = (sel) => document.querySelector(sel)?.textContent?.trim() || null;
    const specifics = {};
    for (const tr of document.querySelectorAll('table.specifics tr')) {
        const key = tr.querySelector('th')?.textContent?.trim();
        if (key) specifics[key] = tr.querySelector('td')?.textContent?.trim() ?? '';
    }
    return {
        title: text('h1.title'),
        price: text('.price'),
        condition: text('.condition'),
        seller: text('.seller .name'),
        seller_score: text('.seller .score'),
        shipping: text('.shipping'),
        location: text('.location'),
        specifics,
        description: text('.description'),
        images: [...document.querySelectorAll('.gallery img')].map((img) => img.getAttribute('src')),
        ended: !!document.querySelector('.ended-banner'),
    };
}

const crawler = new PlaywrightCrawler({
    launchContext: {
        launcher: chromium,
        launchOptions: { executablePath: process.env.CHROME_BIN || '/usr/bin/chromium', headless: true, args: FLAGS },
    },
    headless: true,
    minConcurrency: concurrency,
    maxConcurrency: concurrency,
    requestHandlerTimeoutSecs: 30,
    async requestHandler({ page, request, response, pushData }) {
        const status = response?.status() ?? 0;
        let record = { url: request.url, status };
        if (status < 400) {
            await page.waitForSelector(READY, { state: 'attached', timeout: 10_000 });
            record = { ...record, ...(await page.evaluate(extract)) };
            tally.ready += 1;
        } else {
            tally.not_ready += 1;
        }
        await pushData(record);
        tally.pages += 1;
        doneAt = Date.now();
    },
    failedRequestHandler() {
        tally.errors += 1;
    },
});

await crawler.run(urls);
console.log(JSON.stringify({ ...tally, wall_s: (doneAt - started) / 1000, done_epoch_ms: doneAt }));
