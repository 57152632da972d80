import { compileRules, RulesError, type DangerousAction } from '../../src/remediation/rules.js';

/** What the rules loader refuses in `yaml` (every problem it names), or [] when it compiles. */
export function rulesProblems(yaml: string, allow: readonly DangerousAction[] = []): string[] {
  try {
    compileRules(yaml, allow, 'r.yml');
  } catch (e) {
    if (e instanceof RulesError) return e.problems;
    throw e;
  }
  return [];
}
