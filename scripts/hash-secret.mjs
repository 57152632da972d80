#!/usr/bin/env node
/* global console, process, Buffer */
// Prints credentials in the form celery-autopilot's `auth:` config expects.
//
//   node scripts/hash-secret.mjs password          # asks for a password (or reads one line from stdin),
//                                                   # prints scrypt$N$r$p$salt$hash for auth.users[].password_hash
//   node scripts/hash-secret.mjs user alice admin  # the same, printed as one user line, name:role:hash, for
//                                                   # CELERY_AUTOPILOT_AUTH_USERS or --auth-users (npm run hash-secret -- user …)
//   node scripts/hash-secret.mjs token             # makes a new API token, prints it once and its sha256
//                                                   # for auth.tokens[].sha256
//   node scripts/hash-secret.mjs token --stdin     # prints the sha256 of an existing token read from stdin
//
// Secrets are read from the terminal or stdin, never from the command line, where `ps` and shell
// history would see them. The format must match src/auth/hashing.ts (test/unit/auth-hash-secret.test.ts
// checks the two agree).
import { createHash, randomBytes, scrypt } from 'node:crypto';

const SCRYPT = { N: 32768, r: 8, p: 1 };

const ROLES = ['viewer', 'operator', 'admin'];

function usage(code) {
  console.error('usage: hash-secret.mjs password | user <name> <viewer|operator|admin> | token [--stdin]');
  process.exit(code);
}

async function readAllStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** One line from a terminal without echoing it, or the first line of piped stdin. */
async function readSecret(prompt) {
  if (!process.stdin.isTTY) return (await readAllStdin()).split(/\r?\n/)[0] ?? '';
  process.stderr.write(prompt);
  process.stdin.setRawMode(true);
  process.stdin.resume();
  let value = '';
  try {
    for await (const chunk of process.stdin) {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') return value;
        if (ch === '\u0003') {
          process.stderr.write('\n');
          process.exit(130);
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    }
    return value;
  } finally {
    process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stderr.write('\n');
  }
}

function hashPassword(password) {
  const salt = randomBytes(16);
  const { N, r, p } = SCRYPT;
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, 32, { N, r, p, maxmem: 128 * N * r * 2 + 1024 * 1024 }, (err, key) => {
      if (err) reject(err);
      else resolve(`scrypt$${N}$${r}$${p}$${salt.toString('base64url')}$${key.toString('base64url')}`);
    });
  });
}

const sha256 = (text) => createHash('sha256').update(text, 'utf8').digest('hex');

const [mode, ...rest] = process.argv.slice(2);
/** A new password, asked twice on a terminal. */
async function askPassword(prompt) {
  const password = await readSecret(prompt);
  if (password === '') {
    console.error('empty password refused');
    process.exit(1);
  }
  if (process.stdin.isTTY && (await readSecret('Again: ')) !== password) {
    console.error('the two passwords differ');
    process.exit(1);
  }
  return password;
}

if (mode === 'password') {
  if (rest.length > 0) usage(2);
  process.stdout.write(`${await hashPassword(await askPassword('Password: '))}\n`);
} else if (mode === 'user') {
  const [name, role, ...extra] = rest;
  // The same rules as the config's usernames (src/config/auth-schema.ts).
  // eslint-disable-next-line no-control-regex -- rejecting control characters is the point
  if (extra.length > 0 || !name || !/^[^:,\s\x00-\x1f\x7f]+$/.test(name) || !ROLES.includes(role)) usage(2);
  const line = `${name}:${role}:${await hashPassword(await askPassword(`Password for ${name}: `))}`;
  process.stdout.write(`${line}\n`);
} else if (mode === 'token') {
  if (rest.length === 1 && rest[0] === '--stdin') {
    const token = await readSecret('Token: ');
    if (token.length < 20) {
      console.error('refusing to hash a short token: bearer tokens must be long random strings');
      process.exit(1);
    }
    process.stdout.write(`sha256: ${sha256(token)}\n`);
  } else if (rest.length === 0) {
    const token = `cap_${randomBytes(32).toString('base64url')}`;
    process.stdout.write(`token: ${token}\nsha256: ${sha256(token)}\n`);
    console.error('Give the token to its script (it is not shown again); put the sha256 in auth.tokens[].sha256.');
  } else usage(2);
} else usage(mode === '--help' || mode === '-h' ? 0 : 2);
