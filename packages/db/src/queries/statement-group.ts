/**
 * Group commit: the writes of concurrent occurrences through one database handle made by one
 * statement instead of one each. While a group's statement is in flight the next items queue,
 * and go together when it returns; an item arriving alone goes at once (after the current turn
 * of the event loop, so items that arrive together go together). Each caller awaits its own
 * item's result. At most one item per key (a job) goes in a group: a job's items are written in
 * the order they arrive, as separate statements did. A group whose statement fails is written
 * again item by item, so one bad item fails only its own caller.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../types.ts';

export interface GroupWriter<I, R> {
  /** The most items one statement writes. */
  max: number;
  /** Items of one key never share a group; without it, any items may (a read that locks nothing). */
  key?: (item: I) => string;
  /** The group's statement: one result per item, in the items' order. */
  many: (db: Kysely<Database>, items: readonly I[]) => Promise<R[]>;
  /** One item alone (a group of one, and each item of a failed group). */
  one: (db: Kysely<Database>, item: I) => Promise<R>;
}

interface Pending<I, R> {
  item: I;
  done: (result: R) => void;
  failed: (error: unknown) => void;
}

export class StatementGroup<I, R> {
  #pending: Pending<I, R>[] = [];
  #flushing = false;
  readonly #db: Kysely<Database>;
  readonly #writer: GroupWriter<I, R>;

  constructor(db: Kysely<Database>, writer: GroupWriter<I, R>) {
    this.#db = db;
    this.#writer = writer;
  }

  run(item: I): Promise<R> {
    return new Promise<R>((done, failed) => {
      this.#pending.push({ item, done, failed });
      if (!this.#flushing) {
        this.#flushing = true;
        setImmediate(() => void this.#flush());
      }
    });
  }

  async #flush(): Promise<void> {
    try {
      while (this.#pending.length > 0) {
        const group: Pending<I, R>[] = [];
        const rest: Pending<I, R>[] = [];
        const keys = new Set<string>();
        for (const p of this.#pending) {
          const key = this.#writer.key?.(p.item);
          if (group.length >= this.#writer.max || (key !== undefined && keys.has(key))) rest.push(p);
          else {
            if (key !== undefined) keys.add(key);
            group.push(p);
          }
        }
        this.#pending = rest;
        await this.#write(group);
      }
    } finally {
      this.#flushing = false;
    }
  }

  async #write(group: Pending<I, R>[]): Promise<void> {
    if (group.length === 1) {
      const p = group[0]!;
      await this.#writer.one(this.#db, p.item).then(p.done, p.failed);
      return;
    }
    let results: R[];
    try {
      results = await this.#writer.many(
        this.#db,
        group.map((p) => p.item),
      );
    } catch {
      await Promise.all(group.map((p) => this.#writer.one(this.#db, p.item).then(p.done, p.failed)));
      return;
    }
    for (const [i, p] of group.entries()) p.done(results[i]!);
  }
}

/** One group per database handle and writer. */
export function groupOf<I, R>(
  groups: WeakMap<Kysely<Database>, StatementGroup<I, R>>,
  db: Kysely<Database>,
  writer: GroupWriter<I, R>,
): StatementGroup<I, R> {
  let group = groups.get(db);
  if (group === undefined) {
    group = new StatementGroup(db, writer);
    groups.set(db, group);
  }
  return group;
}
