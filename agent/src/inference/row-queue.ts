/**
 * A bounded FIFO for rows waiting for a micro-batch. `push` never blocks and refuses past
 * `capacity` (the caller counts the row as unscored: ingest must never wait on inference).
 * Retried rows go back to the front with `requeueFront`, which may exceed the capacity by
 * one batch: they were already admitted once.
 */
export interface RowQueue<T> {
  readonly length: number;
  capacity: number;
  /** Appends; false (and nothing stored) when the queue is full. */
  push(item: T): boolean;
  peek(): T | undefined;
  /** Removes and returns up to `max` items from the front, stopping at the first that `accept` refuses. */
  take(max: number, accept: (item: T) => boolean): T[];
  /** Puts items back at the front, in their order. */
  requeueFront(items: readonly T[]): void;
  /** Removes items from the front while `match` holds; returns them. */
  dropFrontWhile(match: (item: T) => boolean): T[];
  forEach(visit: (item: T) => void): void;
  /** Removes and returns everything. */
  clear(): T[];
}

/** Compact the backing array once this many slots at its front are dead. */
const COMPACT_AFTER = 1024;

/** Creates an empty queue holding at most `capacity` items (>= 1). */
export function createRowQueue<T>(initialCapacity: number): RowQueue<T> {
  if (!Number.isSafeInteger(initialCapacity) || initialCapacity < 1) throw new RangeError(`row queue capacity must be a positive integer, got ${initialCapacity}`);
  // A lower capacity set later (a config change) only refuses new pushes; queued items stay.
  let capacity = initialCapacity;
  let items: T[] = [];
  // items[head..] are live; shifting one by one would be O(n) per take.
  let head = 0;

  const compact = (): void => {
    if (head >= COMPACT_AFTER && head * 2 >= items.length) {
      items = items.slice(head);
      head = 0;
    }
  };

  return {
    get length() {
      return items.length - head;
    },
    get capacity() {
      return capacity;
    },
    set capacity(value: number) {
      if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`row queue capacity must be a positive integer, got ${value}`);
      capacity = value;
    },
    push(item) {
      if (items.length - head >= capacity) return false;
      items.push(item);
      return true;
    },
    peek: () => (head < items.length ? items[head] : undefined),
    take(max, accept) {
      let end = head;
      while (end < items.length && end - head < max && accept(items[end] as T)) end++;
      const taken = items.slice(head, end);
      head = end;
      if (head === items.length) {
        items = [];
        head = 0;
      } else compact();
      return taken;
    },
    requeueFront(front) {
      if (front.length === 0) return;
      items = [...front, ...items.slice(head)];
      head = 0;
    },
    dropFrontWhile(match) {
      let end = head;
      while (end < items.length && match(items[end] as T)) end++;
      return this.take(end - head, () => true);
    },
    forEach(visit) {
      for (let i = head; i < items.length; i++) visit(items[i] as T);
    },
    clear() {
      const all = items.slice(head);
      items = [];
      head = 0;
      return all;
    },
  };
}
