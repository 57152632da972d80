import type { TaskEvent } from '../celery/events.js';
import { applyEvent, newTask, text, type FieldLimits, type TaskHistory } from './task-history.js';
import { runQuery, runQueryInSlices, type TaskPage, type TaskQuery } from './task-query.js';

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
 *  - `query(q)`: a filtered, searched, sorted page (Flower's /api/tasks semantics); `queryInSlices(q)`
 *    the same for requests, yielding to the event loop as it goes;
 *  - `taskTypes()`: task names seen, sorted;
 *  - `size`, `capacity`, `evictions`, `duplicates`: for self-metrics and pages;
 *  - `restore`, `trackChanges`, `takeChanges`: for persistence (persistence/task-persistence.ts).
 * Records handed out are the live objects: read them, never change them.
 */
export class TaskStore {
  /** Map order = update order: the first key is the least recently updated task. */
  readonly #tasks = new Map<string, TaskHistory>();
  /** parent id → ids of its children seen so far. */
  readonly #children = new Map<string, Set<string>>();
  /** original id → ids of the tasks published to re-run it. */
  readonly #reruns = new Map<string, Set<string>>();
  readonly #types = new Set<string>();
  readonly #maxTypes: number;
  /** Set by `trackChanges()` (persistence): ids updated and ids evicted since the last `takeChanges()`. */
  #changes: { updated: Set<string>; evicted: Set<string> } | undefined;
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
    const nameBefore = task.name;
    if (applyEvent(task, event, this.options.limits) === 'duplicate') this.duplicates++;
    else if (this.#changes) {
      // Re-added so the set keeps update order, the order records are restored in.
      this.#changes.updated.delete(uuid);
      this.#changes.updated.add(uuid);
    }
    if (task.parent_id !== parentBefore) this.#link(task, parentBefore);
    if (task.name !== nameBefore && task.name !== null && this.#types.size < this.#maxTypes) this.#types.add(task.name);
  }

  get(uuid: string): Readonly<TaskHistory> | undefined {
    return this.#tasks.get(uuid);
  }

  children(uuid: string): string[] {
    const c = this.#children.get(uuid);
    return c ? [...c] : [];
  }

  /** Ids of the re-runs of this task that are still kept. */
  reruns(uuid: string): string[] {
    const r = this.#reruns.get(uuid);
    return r ? [...r] : [];
  }

  /**
   * Records a task we just published to re-run `original`: the record exists (PENDING) before
   * any event of its own, so both pages link each other at once; its events then fill it in.
   */
  recordRerun(uuid: string, original: string, fields: Pick<TaskHistory, 'name' | 'args' | 'kwargs' | 'queue'>, sentAt: number): void {
    let task = this.#tasks.get(uuid);
    // A fast worker's events may have come first: they are kept, only the link is added.
    if (!task) {
      this.#makeRoom();
      task = newTask(uuid);
      task.name = fields.name;
      task.args = text(fields.args, this.options.limits.args);
      task.kwargs = text(fields.kwargs, this.options.limits.kwargs);
      task.queue = fields.queue;
      task.routing_key = fields.queue;
      task.sent = sentAt;
      task.timestamp = sentAt;
      this.#tasks.set(uuid, task);
    }
    task.rerun_of = original;
    this.#linkRerun(task);
    this.#changes?.updated.add(uuid);
  }

  /** Oldest (least recently updated) first. */
  all(): IterableIterator<Readonly<TaskHistory>> {
    return this.#tasks.values();
  }

  query(q: TaskQuery): TaskPage {
    return runQuery(this.#tasks, q);
  }

  /** query() for requests: searches a slice of the store at a time, yielding to the event loop in between. */
  queryInSlices(q: TaskQuery): Promise<TaskPage> {
    return runQueryInSlices(this.#tasks, q, () => new Promise((resolve) => setImmediate(resolve)));
  }

  taskTypes(): string[] {
    return [...this.#types].sort();
  }

  /** Puts back a record read from persistence (oldest first), as if its events had just arrived. */
  restore(record: TaskHistory): void {
    // Cut again: the file may have been written with larger limits (or by hand).
    const l = this.options.limits;
    record.args = text(record.args, l.args);
    record.kwargs = text(record.kwargs, l.kwargs);
    record.result = text(record.result, l.result);
    record.exception = text(record.exception, l.exception);
    record.traceback = text(record.traceback, l.traceback);
    if (this.#tasks.has(record.uuid)) this.#tasks.delete(record.uuid);
    else this.#makeRoom();
    this.#tasks.set(record.uuid, record);
    this.#link(record, null);
    this.#linkRerun(record);
    if (record.name !== null && this.#types.size < this.#maxTypes) this.#types.add(record.name);
  }

  /** From now on, remember which tasks changed, for `takeChanges`. */
  trackChanges(): void {
    this.#changes ??= { updated: new Set(), evicted: new Set() };
  }

  /** The tasks updated (current records, oldest first) and the ids evicted since the last call. */
  takeChanges(): { updated: Readonly<TaskHistory>[]; evicted: string[] } {
    const c = this.#changes;
    if (!c) return { updated: [], evicted: [] };
    this.#changes = { updated: new Set(), evicted: new Set() };
    const updated: TaskHistory[] = [];
    for (const id of c.updated) {
      const t = this.#tasks.get(id);
      if (t) updated.push(t);
    }
    return { updated, evicted: [...c.evicted] };
  }

  #makeRoom(): void {
    while (this.#tasks.size >= this.options.maxTasks) {
      const oldest = this.#tasks.keys().next().value;
      if (oldest === undefined) return;
      const task = this.#tasks.get(oldest)!;
      this.#tasks.delete(oldest);
      this.evictions++;
      if (this.#changes) {
        this.#changes.updated.delete(oldest);
        this.#changes.evicted.add(oldest);
      }
      if (task.parent_id !== null) this.#unlink(task.parent_id, oldest);
      this.#children.delete(oldest);
      if (task.rerun_of !== null) this.#unlinkRerun(task.rerun_of, oldest);
      this.#reruns.delete(oldest);
    }
  }

  #link(task: TaskHistory, previousParent: string | null): void {
    if (previousParent !== null) this.#unlink(previousParent, task.uuid);
    if (task.parent_id === null || task.parent_id === task.uuid) return;
    let set = this.#children.get(task.parent_id);
    if (!set) this.#children.set(task.parent_id, (set = new Set()));
    set.add(task.uuid);
  }

  #linkRerun(task: TaskHistory): void {
    if (task.rerun_of === null || task.rerun_of === task.uuid) return;
    let set = this.#reruns.get(task.rerun_of);
    if (!set) this.#reruns.set(task.rerun_of, (set = new Set()));
    set.add(task.uuid);
  }

  #unlinkRerun(original: string, rerun: string): void {
    const set = this.#reruns.get(original);
    set?.delete(rerun);
    if (set?.size === 0) this.#reruns.delete(original);
  }

  #unlink(parent: string, child: string): void {
    const set = this.#children.get(parent);
    if (!set) return;
    set.delete(child);
    if (set.size === 0) this.#children.delete(parent);
  }
}
