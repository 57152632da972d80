/**
 * The roles, the one definition: viewer reads; operator runs control commands; admin also the
 * dangerous ones (shutdown, pool_restart, revoke with terminate) and remediation settings.
 * Ordered: admin ⊇ operator ⊇ viewer. The config schema, the auth middleware and the COMMANDS
 * table all take them from here.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

/** Whether `have` may do what needs `need`. */
export function roleAtLeast(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

export function compareRolesDescending(a: Role, b: Role): number {
  return RANK[b] - RANK[a];
}
