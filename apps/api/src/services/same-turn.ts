/**
 * Identical reads that arrive in one turn of the event loop share one query. The first read of a
 * key waits for the end of the turn (`setImmediate`: after every request the turn's I/O brought
 * in has run its synchronous part), then one query runs for every read of that key since, and
 * each gets its result. A read arriving after the query began starts the next one. So each answer
 * comes from a query sent after its own request arrived: it shows every write answered before
 * that, as a query of its own would. Only for reads on the primary: with a read replica the
 * primary-or-replica choice is made per request, from that request's write marks.
 */
export class SameTurnReads<T> {
  readonly #pending = new Map<string, Promise<T>>();

  read(key: string, run: () => Promise<T>): Promise<T> {
    const pending = this.#pending.get(key);
    if (pending !== undefined) return pending;
    const shared = new Promise<T>((resolve, reject) => {
      setImmediate(() => {
        this.#pending.delete(key);
        run().then(resolve, reject);
      });
    });
    this.#pending.set(key, shared);
    return shared;
  }

  /** Keys whose query has not begun yet. */
  get size(): number {
    return this.#pending.size;
  }
}
