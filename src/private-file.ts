import { chmodSync, closeSync, existsSync, openSync, statSync } from 'node:fs';

/**
 * Files that hold what not everyone may read: tasks.persist (task arguments and results, with its
 * -wal and -shm) and the audit log. They are created readable by the service's user only, and an
 * existing one readable by others is tightened, since the payload role means nothing if any local
 * account can read the same data from disk.
 */
export const PRIVATE_MODE = 0o600;

/**
 * Creates `file` (never truncating it) readable and writable by its owner only, or tightens it if
 * it exists. False when an existing file could not be tightened (another user owns it): the
 * caller says so in its log and goes on, as it would have before.
 */
export function ensurePrivateFile(file: string): boolean {
  // The mode applies to a new file (the umask can only take bits away); an old one is chmod-ed.
  closeSync(openSync(file, 'a', PRIVATE_MODE));
  return tightenIfExists(file);
}

/** chmod 600 when group or others may read or write `file`; a missing file is left missing. */
export function tightenIfExists(file: string): boolean {
  if (!existsSync(file) || (statSync(file).mode & 0o077) === 0) return true;
  try {
    chmodSync(file, PRIVATE_MODE);
    return true;
  } catch {
    return false;
  }
}
