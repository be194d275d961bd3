// What `max_concurrent_requests` bounds: requests whose body has been read in full and that are
// being decoded and committed. Reading a body takes no slot (a slow upload holds only its
// bytes, bounded by the read timeouts and `max_receiving_bytes`), so a trickling sender cannot
// lock others out. Past the slots, up to `max_queued_requests` wait in arrival order; past
// that, the request is refused at once (503 + Retry-After), which is what makes overload
// visible to senders instead of showing only as latency.
//
// Decoding and a SQLite commit are synchronous: a request granted a slot would run to its end
// before the event loop reads the next socket, so the slot count would never pass 1 and the
// bound would never trip. Each granted request therefore starts on the next turn of the loop
// (setImmediate): bodies that completed in the same turn meet the bound together, and each
// turn admits at most `max_concurrent_requests` of them.

export class Admission {
  readonly #slots: number;
  readonly #queueLimit: number;
  readonly #waiting: (() => void)[] = [];
  #active = 0;

  constructor(slots: number, queueLimit: number) {
    this.#slots = slots;
    this.#queueLimit = queueLimit;
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * A promise that resolves once the caller holds a slot (it must call release() after), or
   * null when the slots and the queue are full and the request should be refused.
   */
  acquire(): Promise<void> | null {
    if (this.#active < this.#slots && this.#waiting.length === 0) {
      this.#active++;
      return new Promise((resolve) => setImmediate(resolve));
    }
    if (this.#waiting.length >= this.#queueLimit) return null;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    // The slot passes straight to the next in line, on the next turn of the loop.
    if (next) setImmediate(next);
    else this.#active--;
  }
}
