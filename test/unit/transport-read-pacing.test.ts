import { describe, expect, it } from 'vitest';
import { FULL_READ_BYTES, MIN_PAUSE_MS, ReadPacer, STREAMING_BYTES } from '../../src/transport/read-pacing.js';

/** The pacing decision with hand-fed byte counts and a hand-moved clock. */
function pacer(windowMs = 100) {
  const p = new ReadPacer(windowMs);
  let bytes = 0;
  let now = 0;
  p.resumed(bytes, now);
  return {
    p,
    /** One read of `n` bytes, `afterMs` after the previous one: true when reads pause. */
    read(n: number, afterMs = 1) {
      bytes += n;
      now += afterMs;
      return p.afterRead(bytes, now);
    },
    /** The pause is over: reading resumes `afterMs` later. */
    resume(afterMs: number) {
      now += afterMs;
      p.resumed(bytes, now);
    },
  };
}

describe('ReadPacer', () => {
  it('pauses after each read that drained the socket (less than a full read buffer)', () => {
    const r = pacer();
    for (let i = 0; i < 20; i++) {
      expect(r.read(700)).toBe(true);
      r.resume(100);
    }
    expect(r.p.streaming).toBe(false);
  });

  it('keeps reading after a read that filled the buffer: more is waiting in the kernel', () => {
    const r = pacer();
    expect(r.read(FULL_READ_BYTES)).toBe(false);
    expect(r.read(FULL_READ_BYTES)).toBe(false);
    // The tail of the backlog: now the socket is drained, and the window is still under the streaming bound.
    expect(r.read(1000)).toBe(true);
    expect(r.p.streaming).toBe(false);
  });

  it('stops pacing when one window brings STREAMING_BYTES, and paces again once a window brings less', () => {
    const r = pacer(100);
    const reads = Math.ceil(STREAMING_BYTES / FULL_READ_BYTES);
    for (let i = 0; i < reads - 1; i++) expect(r.read(FULL_READ_BYTES)).toBe(false);
    expect(r.read(FULL_READ_BYTES)).toBe(false);
    expect(r.p.streaming).toBe(true);
    // Streaming: small reads inside the window never pause, whatever their size.
    for (let i = 0; i < 50; i++) expect(r.read(500, 1)).toBe(false);
    // The window ended with 25 kB in it: the next read after it pauses and pacing is back.
    expect(r.read(500, 60)).toBe(true);
    expect(r.p.streaming).toBe(false);
  });

  it('halves the pause while windows bring a full read buffer or more, down to streaming: a receive buffer that never grew', () => {
    const r = pacer(100);
    // ~96 KiB a window, as a paced new connection's kernel buffer holds: never STREAMING_BYTES.
    const windowBytes = FULL_READ_BYTES + 32 * 1024;
    const pauses: number[] = [];
    while (!r.p.streaming) {
      expect(r.read(FULL_READ_BYTES)).toBe(false);
      if (!r.read(windowBytes - FULL_READ_BYTES)) break;
      pauses.push(r.p.pauseMs);
      r.resume(r.p.pauseMs);
    }
    expect(pauses).toEqual([50, 25, 12.5, 6.25, 3.125, 1.5625]);
    expect(pauses.at(-1)! / 2).toBeLessThan(MIN_PAUSE_MS);
    expect(r.p.streaming).toBe(true);
  });

  it('a window under a full read buffer restores the whole pause', () => {
    const r = pacer(100);
    r.read(FULL_READ_BYTES);
    expect(r.read(1000)).toBe(true);
    expect(r.p.pauseMs).toBe(50);
    r.resume(50);
    expect(r.read(700)).toBe(true);
    expect(r.p.pauseMs).toBe(100);
  });

  it('stays streaming while every window carries STREAMING_BYTES or more', () => {
    const r = pacer(100);
    expect(r.read(STREAMING_BYTES)).toBe(false);
    for (let w = 0; w < 5; w++) {
      for (let i = 0; i < 9; i++) expect(r.read(STREAMING_BYTES / 8, 10)).toBe(false);
      expect(r.p.streaming).toBe(true);
    }
  });
});
