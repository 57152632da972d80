import type { TaskEvent } from '../celery/events.js';
import { applyEvent, newTask, text, type FieldLimits, type TaskRecord } from './task-state.js';
import { runQuery, type TaskPage, type TaskQuery } from './task-query.js';

export interface TaskStoreOptions {
  /** Tasks kept; the least recently updated is evicted first (Flower's max_tasks). */
  maxTasks: number;
  limits: FieldLimits;
  /** Distinct task names remembered for /api/task/types. */
  maxTaskTypes?: number;
}

/**
 * Recent tasks, built from the same decoded events the exporter counts (the event processor
 * hands each task event here). Bounded: at most `maxTasks` records, each with capped fields.
 *
 * Public API (what the HTTP layer and the console use; everything else is private):
 *  - `get(uuid)`, `children(uuid)`: one task and the ids of tasks it started;
 *  - `query(q)`: a filtered, searched, sorted page (Flower's /api/tasks semantics);
 *  - `taskTypes()`: task names seen, sorted;
 *  - `size`, `capacity`, `evictions`, `duplicates`: for self-metrics and pages.
 * Records handed out are the live objects: read them, never change them.
 */
export class TaskStore {
  /** Map order = update order: the first key is the least recently updated task. */
  readonly #tasks = new Map<string, TaskRecord>();
  /** parent id → ids of its children seen so far. */
  readonly #children = new Map<string, Set<string>>();
  readonly #types = new Set<string>();
  readonly #maxTypes: number;
  evictions = 0;
  duplicates = 0;

  constructor(private readonly options: TaskStoreOptions) {
    this.#maxTypes = options.maxTaskTypes ?? 10_000;
  }

  get capacity(): number {
    return this.options.maxTasks;
  }

  get size(): number {
    return this.#tasks.size;
  }

  handle(event: TaskEvent): void {
    const uuid = text(event.uuid, 255);
    if (uuid === null) return;
    let task = this.#tasks.get(uuid);
    if (task === undefined) {
      this.#makeRoom();
      task = newTask(uuid);
    } else {
      // Re-inserted below: a task still getting events is never the next one evicted.
      this.#tasks.delete(uuid);
    }
    this.#tasks.set(uuid, task);
    const parentBefore = task.parent_id;
    if (applyEvent(task, event, this.options.limits) === 'duplicate') this.duplicates++;
    if (task.parent_id !== parentBefore) this.#link(task, parentBefore);
    if (task.name !== null && this.#types.size < this.#maxTypes) this.#types.add(task.name);
  }

  get(uuid: string): Readonly<TaskRecord> | undefined {
    return this.#tasks.get(uuid);
  }

  children(uuid: string): string[] {
    const c = this.#children.get(uuid);
    return c ? [...c] : [];
  }

  /** Oldest (least recently updated) first. */
  all(): IterableIterator<Readonly<TaskRecord>> {
    return this.#tasks.values();
  }

  query(q: TaskQuery): TaskPage {
    return runQuery(this.#tasks, q);
  }

  taskTypes(): string[] {
    return [...this.#types].sort();
  }

  #makeRoom(): void {
    while (this.#tasks.size >= this.options.maxTasks) {
      const oldest = this.#tasks.keys().next().value;
      if (oldest === undefined) return;
      const task = this.#tasks.get(oldest)!;
      this.#tasks.delete(oldest);
      this.evictions++;
      if (task.parent_id !== null) this.#unlink(task.parent_id, oldest);
      this.#children.delete(oldest);
    }
  }

  #link(task: TaskRecord, previousParent: string | null): void {
    if (previousParent !== null) this.#unlink(previousParent, task.uuid);
    if (task.parent_id === null || task.parent_id === task.uuid) return;
    let set = this.#children.get(task.parent_id);
    if (!set) this.#children.set(task.parent_id, (set = new Set()));
    set.add(task.uuid);
  }

  #unlink(parent: string, child: string): void {
    const set = this.#children.get(parent);
    if (!set) return;
    set.delete(child);
    if (set.size === 0) this.#children.delete(parent);
  }
}
