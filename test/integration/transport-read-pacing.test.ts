import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { paceReads } from '../../src/transport/read-pacing.js';

/**
 * Read pacing on real kernel sockets (a local TCP server), read both ways the broker clients
 * read theirs: 'readable' + read() as amqplib does, 'data' as ioredis does.
 */

const servers: Server[] = [];
const sockets: Socket[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill();
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A server whose one connection is handed to `feed`, and a connected client socket. */
async function pair(feed: (peer: Socket) => Promise<void> | void): Promise<{ client: Socket; fed: Promise<void> }> {
  let fed!: Promise<void>;
  const server = createServer((peer) => {
    sockets.push(peer);
    fed = Promise.resolve(feed(peer)).then(() => {
      peer.end();
    });
  });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const client = connect({ port, host: '127.0.0.1', noDelay: true });
  sockets.push(client);
  await once(client, 'connect');
  while (fed === undefined) await new Promise((r) => setImmediate(r));
  return { client, fed };
}

/** Connects to a child process that writes `size` bytes as fast as the socket takes them, then ends. */
async function burstFromChildProcess(size: number): Promise<Socket> {
  const script = `
    const server = require('node:net').createServer((peer) => {
      peer.end(Buffer.alloc(${size}, 0x61));
      server.close();
    });
    server.listen(0, '127.0.0.1', () => console.log(server.address().port));`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const [line] = (await once(child.stdout, 'data')) as [Buffer];
  const client = connect({ port: Number(line.toString('utf8').trim()), host: '127.0.0.1', noDelay: true });
  sockets.push(client);
  await once(client, 'connect');
  return client;
}

/** Reads the socket the way `mode`'s client does; resolves with what arrived and how many read callbacks it took. */
function consume(client: Socket, mode: 'readable' | 'data'): { done: Promise<Buffer>; reads: () => number } {
  const chunks: Buffer[] = [];
  let reads = 0;
  if (mode === 'readable') {
    client.on('readable', () => {
      reads += 1;
      let chunk: Buffer | null;
      while ((chunk = client.read() as Buffer | null) !== null) chunks.push(chunk);
    });
  } else {
    client.on('data', (chunk: Buffer) => {
      reads += 1;
      chunks.push(chunk);
    });
  }
  const done = once(client, 'end').then(() => Buffer.concat(chunks));
  return { done, reads: () => reads };
}

/** `count` numbered 40-byte messages, one write each, `gapMs` apart: a paced event stream. */
async function trickle(peer: Socket, count: number, gapMs: number, first = 0): Promise<void> {
  for (let i = first; i < first + count; i++) {
    peer.write(`message ${String(i).padStart(6, '0')} ${'.'.repeat(24)}\n`);
    await new Promise((r) => setTimeout(r, gapMs));
  }
}

function expectTrickle(received: Buffer, count: number): void {
  const lines = received.toString('utf8').split('\n').filter(Boolean);
  expect(lines).toHaveLength(count);
  lines.forEach((line, i) => expect(line.startsWith(`message ${String(i).padStart(6, '0')} `)).toBe(true));
}

describe.each(['readable', 'data'] as const)("paceReads on a socket read with '%s'", (mode) => {
  it('batches a trickle into far fewer reads, with every byte delivered in order', async () => {
    const count = 300;
    const unpaced = await pair((peer) => trickle(peer, count, 2));
    const plain = consume(unpaced.client, mode);
    expectTrickle(await plain.done, count);

    const paced = await pair((peer) => trickle(peer, count, 2));
    const batched = consume(paced.client, mode);
    const pacing = paceReads(paced.client, 50);
    expectTrickle(await batched.done, count);

    // ~0.7 s of writes every 2 ms: read as they come that is hundreds of reads; paced at 50 ms, a few dozen.
    expect(plain.reads()).toBeGreaterThan(100);
    expect(batched.reads()).toBeLessThan(plain.reads() / 3);
    expect(pacing.pauses).toBeGreaterThan(3);
  });

  it('reads a burst straight through: no pause while full read buffers keep coming', async () => {
    const size = 16 * 1024 * 1024;
    // The sender is another process, as a broker is: in this one, every pause of the reader
    // would also stop the writes that fill the socket, and on a loaded machine the burst
    // would look like a trickle.
    const client = await burstFromChildProcess(size);
    const received = consume(client, mode);
    const pacing = paceReads(client, 50);
    const all = await received.done;
    expect(all.length).toBe(size);
    // Paced at every drained read, 16 MiB would take 80–256 pauses (64–200 KiB a window); it
    // streams instead. Before windows of a full read buffer shortened the pause, one run in
    // three here was read at ~2 MB/s in 176 pauses: the new connection's receive buffer never grew.
    expect(pacing.pauses).toBeLessThan(32);
  });

  it('does not pause while hurried, and paces again once released', async () => {
    const hurried: { release?: () => void } = {};
    let pausesWhileHurried = -1;
    const { client } = await pair(async (peer) => {
      await trickle(peer, 100, 2);
      pausesWhileHurried = pacing.pauses;
      hurried.release!();
      await trickle(peer, 100, 2, 100);
    });
    const received = consume(client, mode);
    const pacing = paceReads(client, 50);
    hurried.release = pacing.hurry(60_000);
    expectTrickle(await received.done, 200);
    expect(pausesWhileHurried).toBe(0);
    expect(pacing.pauses).toBeGreaterThan(0);
  });

  it('leaves the socket alone with a 0 ms window', async () => {
    const { client } = await pair((peer) => trickle(peer, 50, 2));
    const received = consume(client, mode);
    const pacing = paceReads(client, 0);
    expectTrickle(await received.done, 50);
    expect(pacing.pauses).toBe(0);
  });
});

describe('paceReads on a TLS socket', () => {
  it('leaves it alone: Node restarts TLS reads by itself, so pausing would only add timers', async () => {
    const { TLSSocket } = await import('node:tls');
    const { client } = await pair((peer) => trickle(peer, 10, 1));
    const wrapped = new TLSSocket(client);
    sockets.push(wrapped);
    wrapped.on('error', () => undefined);
    wrapped.on('data', () => undefined);
    const listeners = wrapped.listenerCount('data') + wrapped.listenerCount('readable');
    const pacing = paceReads(wrapped, 50);
    expect(wrapped.listenerCount('data') + wrapped.listenerCount('readable')).toBe(listeners);
    expect(pacing.pauses).toBe(0);
    wrapped.destroy();
  });
});
