/**
 * A Map with a size bound and least-recently-used eviction, both O(1).
 *
 * JavaScript's Map iterates in insertion order, so deleting and re-inserting a key on use
 * keeps the least recently used entry first; evicting it is `keys().next()`. That is the whole
 * trick: no linked list of our own, no scan. Used for every per-key cache that grows with
 * traffic (the pacer's conversations and tenants, the connector's clients per service URL), so
 * memory stays bounded whatever the number of keys, and no call ever walks the whole map.
 */
export class BoundedMap<K, V> {
  readonly #entries = new Map<K, V>();

  /**
   * @param maxSize entries kept; adding one more evicts the least recently used.
   * @param onEvict called with each evicted entry (not for `delete`).
   */
  constructor(
    readonly maxSize: number,
    private readonly onEvict?: (key: K, value: V) => void,
  ) {
    if (!Number.isInteger(maxSize) || maxSize < 1)
      throw new RangeError("BoundedMap: maxSize must be a positive integer");
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The value, marked as just used. */
  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value === undefined) return undefined;
    this.#entries.delete(key);
    this.#entries.set(key, value);
    return value;
  }

  /** The value, without marking it used. */
  peek(key: K): V | undefined {
    return this.#entries.get(key);
  }

  has(key: K): boolean {
    return this.#entries.has(key);
  }

  /** Stores the value as the most recently used; evicts the least recently used over the bound. */
  set(key: K, value: V): this {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    while (this.#entries.size > this.maxSize) {
      const oldest = this.#entries.keys().next();
      if (oldest.done === true) break;
      const evicted = this.#entries.get(oldest.value)!;
      this.#entries.delete(oldest.value);
      this.onEvict?.(oldest.value, evicted);
    }
    return this;
  }

  delete(key: K): boolean {
    return this.#entries.delete(key);
  }

  /** The least recently used entry, if any (for idle sweeps that stop at the first live one). */
  oldest(): [K, V] | undefined {
    const first = this.#entries.entries().next();
    return first.done === true ? undefined : first.value;
  }
}
