import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { KUBECTL } from './kubernetes-manifests.js';

const run = promisify(execFile);

/** Runs Debian's kubectl with this kubeconfig; resolves with exit code, stdout and stderr (never rejects on a non-zero exit). */
export async function kubectl(kubeconfig: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string; message: string };
    if (typeof err.code !== 'number') throw new Error(`kubectl ${args.join(' ')} did not run: ${err.message}`, { cause: e });
    return { code: err.code, stdout: err.stdout ?? '', stderr: err.stderr ?? '' };
  }
}
