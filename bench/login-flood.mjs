#!/usr/bin/env node
/* global console, process, Buffer */
/**
 * Login latency under a flood: how long a real user's first basic-auth login takes while one
 * other client keeps 300 bad logins in flight.
 *
 *   node bench/login-flood.mjs                         # this checkout, 300 in flight, 8 real logins
 *   node bench/login-flood.mjs --repo /path/to/other   # the same against another checkout (e.g. main)
 *   node bench/login-flood.mjs --flood 0               # the baseline: no flood
 *   node bench/login-flood.mjs --mode wave             # one wave of 300 at once instead of 300 always in flight
 *
 * The service runs as a child process (`node --import tsx src/main.ts` in --repo), with a
 * broker URL nobody listens on: password checks need no broker. The flood comes from
 * 127.0.0.2 and (mode `sustained`) re-sends each bad login as soon as it is answered, so
 * `--flood` requests are always in flight, or (mode `wave`) sends `--flood` at once and the real
 * logins start 50 ms later, while the wave is being answered. Each real login is from 127.0.0.3 for a different user (so the verification
 * cache never answers), one after another, on GET /api/v1/audit (viewer).
 *
 * Prints the latencies and writes JSON to bench/results/login-flood-<date>.json.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { environment, freePort, median, parseBenchArgs, REPO_ROOT, sleep, writeResults } from './exporter-process.mjs';

const usage = 'node bench/login-flood.mjs [--repo DIR] [--flood 300] [--mode sustained|wave] [--logins 8] [--warmup-ms 1000]';
const opts = parseBenchArgs(usage, { repo: REPO_ROOT, flood: '300', mode: 'sustained', logins: '8', 'warmup-ms': '1000' });
const wave = opts.mode === 'wave';
const repo = resolve(opts.repo);
const floodSize = Number(opts.flood);
const logins = Number(opts.logins);

function get(url, authorization, localAddress) {
  return new Promise((resolveAnswer) => {
    const started = performance.now();
    const req = request(url, { headers: { authorization }, localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolveAnswer({ status: res.statusCode, ms: performance.now() - started }));
    });
    req.on('error', (e) => resolveAnswer({ status: 0, ms: performance.now() - started, error: e.message }));
    req.end();
  });
}

const basic = (user, password) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'cap-login-flood-'));
  const port = await freePort();
  const users = [];
  for (let i = 0; i < logins; i++) users.push({ username: `user${i}`, password: `real-password-${i}-of-bench` });
  // Hashes in the config's format with the project's default parameters (as scripts/hash-secret.mjs writes them).
  const hashed = [];
  for (const u of users) hashed.push({ username: u.username, password_hash: await hash(u.password), role: 'viewer' });
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    JSON.stringify({
      broker_url: 'amqp://guest:guest@127.0.0.1:1//',
      audit: { file: '' },
      auth: { users: hashed, login_rate_limit: { max_failures: 10, window_seconds: 300 } },
    }),
  );
  const child = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(repo, 'src', 'main.ts'),
      '--config',
      config,
      '--port',
      String(port),
      '--listen-address',
      '127.0.0.1',
      '--log-level',
      'error',
    ],
    {
      cwd: repo,
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}/api/v1/audit?limit=1`;
  try {
    for (let i = 0; ; i++) {
      const a = await get(`http://127.0.0.1:${port}/-/healthy`, '', '127.0.0.1');
      if (a.status === 200) break;
      if (i > 300) throw new Error('service did not start');
      await sleep(100);
    }
    let flooding = floodSize > 0;
    const floodStatuses = new Map();
    let floodAnswers = 0;
    const floodLoop = async (n) => {
      do {
        const a = await get(url, basic('nobody', `wrong-${n}-${floodAnswers}`), '127.0.0.2');
        floodAnswers++;
        floodStatuses.set(a.status, (floodStatuses.get(a.status) ?? 0) + 1);
      } while (flooding && !wave);
    };
    const flood = Array.from({ length: floodSize }, (_, n) => floodLoop(n));
    await sleep(wave ? 50 : Number(opts['warmup-ms']));
    const samples = [];
    for (const u of users) {
      const a = await get(url, basic(u.username, u.password), '127.0.0.3');
      samples.push({ user: u.username, status: a.status, ms: Math.round(a.ms) });
    }
    flooding = false;
    await Promise.all(flood);
    const ms = samples.map((s) => s.ms);
    const result = {
      repo,
      flood: floodSize,
      mode: opts.mode,
      samples,
      median_ms: median(ms),
      max_ms: Math.max(...ms),
      refused: samples.filter((s) => s.status !== 200).length,
      flood_answers: Object.fromEntries(floodStatuses),
    };
    console.log(JSON.stringify(result, null, 2));
    writeResults('login-flood', { environment: environment(), options: opts, result });
  } finally {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** scrypt$N$r$p$salt$hash with the project's defaults (src/auth/hashing.ts). */
async function hash(password) {
  const { scrypt, randomBytes } = await import('node:crypto');
  const salt = randomBytes(16);
  const key = await new Promise((ok, fail) =>
    scrypt(password.normalize('NFC'), salt, 32, { N: 32768, r: 8, p: 1, maxmem: 80 * 1024 * 1024 }, (e, k) => (e ? fail(e) : ok(k))),
  );
  return `scrypt$32768$8$1$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
