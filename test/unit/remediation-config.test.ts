import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { helpText } from '../../src/config/reference.js';

function problems(argv: string[], file = ''): string[] {
  try {
    loadConfig({ argv, env: {}, readFile: () => file });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('remediation configuration', () => {
  it('the tunables that were hard-coded keep their values as defaults, and are settable by flag', () => {
    const r = loadConfig({ argv: [], env: {} }).config!.remediation;
    expect(r).toMatchObject({
      in_flight_seconds: 120,
      busy_shrink_retries: 10,
      busy_shrink_retry_seconds: 2,
      pending_resize_seconds: 10,
      max_state_entries: 100_000,
      kill_switch_refresh_seconds: 0.5,
    });
    const set = loadConfig({ argv: ['--remediation-in-flight-seconds', '30', '--remediation-busy-shrink-retries', '0'], env: {} }).config!
      .remediation;
    expect([set.in_flight_seconds, set.busy_shrink_retries]).toEqual([30, 0]);
    expect(helpText()).toContain('--remediation-kill-switch-refresh-seconds');
  });

  it("cross-field rules are the schema's refinements, reported together with every other problem", () => {
    const found = problems(
      ['--config', 'c.yaml', '--remediation-enabled', 'true', '--port', '99999'],
      'remediation: { webhook: { bearer_token: "a-long-enough-webhook-token", bearer_token_file: /x } }',
    );
    expect(found).toEqual(
      expect.arrayContaining([
        'port: Too big: expected number to be <=65535',
        'remediation.rules_file: remediation is enabled but no rules file is given',
        'remediation.webhook: give bearer_token or bearer_token_file, not both',
      ]),
    );
    expect(problems(['--remediation-enabled', 'true', '--remediation-rules-file', '/r.yml'])).toEqual([
      'remediation.webhook: give bearer_token_file, bearer_token or basic_auth (the receiver never runs unauthenticated unless auth.insecure_no_auth)',
    ]);
  });
});
