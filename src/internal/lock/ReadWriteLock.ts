/**
 * The read/write lock guarding the index, managed by Effect's STM.
 *
 * Its whole state is one `TxRef`: how many readers hold it, whether a writer
 * does, and how many writers wait. Blocking acquisitions are transactions
 * that `txRetry` until they can proceed; STM wakes them when the state
 * changes. Readers share the lock; a writer is exclusive and waits until the
 * readers in progress have finished (the original Python library's rule). Once a writer waits,
 * new *lock-holding* readers queue behind it, so a stream of scans cannot
 * starve writers.
 *
 * The fast path. A transaction costs ~1.6 µs here, more than a whole `get`
 * should, so single-key operations do not take the lock at all when they do
 * not have to: they read the last committed state (`TxRef.value`, safe to read
 * outside a transaction because commits are synchronous) and, if the lock is
 * free for them, do their work in the same synchronous step. No fiber can run
 * between that check and that work, so the operation behaves exactly as if it
 * had acquired and released the lock around it (see `docs/design.md`).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as TxRef from "effect/TxRef"

interface LockState {
  readonly readers: number
  readonly writer: boolean
  readonly writersWaiting: number
}

const unlocked: LockState = { readers: 0, writer: false, writersWaiting: 0 }

/**
 * Acquisitions that went through a transaction (`withRead`, `withWrite`),
 * across every lock in the process: tests read them to show that their
 * histories reached the slow path. The fast path never touches them.
 */
const slowPath = { reads: 0, writes: 0 }

/** How many `withRead` and `withWrite` acquisitions began so far, in this process. */
export const slowPathStats = (): { readonly reads: number; readonly writes: number } => ({ ...slowPath })

export class ReadWriteLock {
  private readonly state: TxRef.TxRef<LockState> = TxRef.makeUnsafe(unlocked)

  /** Whether a single synchronous read may run now without the lock. */
  readFree(): boolean {
    return !this.state.value.writer
  }

  /** Whether a single synchronous write may run now without the lock. */
  writeFree(): boolean {
    const state = this.state.value
    return state.readers === 0 && !state.writer
  }

  /** The committed state, for tests and diagnostics. */
  snapshot(): LockState {
    return this.state.value
  }

  // Acquiring is split in two so that an interruption can never land between
  // a committed acquisition and the release that must follow it: the attempt
  // (which may commit) runs uninterruptibly and never blocks; the wait, which
  // blocks and may be interrupted, only watches the state and changes nothing.

  /** Takes a read share if no writer holds or awaits the lock; whether it did. */
  private readonly tryAcquireRead: Effect.Effect<boolean> = Effect.tx(
    Effect.flatMap(TxRef.get(this.state), (state) =>
      state.writer || state.writersWaiting > 0
        ? Effect.succeed(false)
        : Effect.as(TxRef.set(this.state, { ...state, readers: state.readers + 1 }), true))
  )

  private readonly awaitReadable: Effect.Effect<void> = Effect.tx(
    Effect.flatMap(TxRef.get(this.state), (state) =>
      state.writer || state.writersWaiting > 0 ? Effect.txRetry : Effect.void)
  )

  private readonly releaseRead: Effect.Effect<void> = Effect.tx(
    TxRef.update(this.state, (state) => ({ ...state, readers: state.readers - 1 }))
  )

  private readonly enqueueWriter: Effect.Effect<void> = Effect.tx(
    TxRef.update(this.state, (state) => ({ ...state, writersWaiting: state.writersWaiting + 1 }))
  )

  private readonly dequeueWriter: Effect.Effect<void> = Effect.tx(
    TxRef.update(this.state, (state) => ({ ...state, writersWaiting: state.writersWaiting - 1 }))
  )

  /** Takes the lock for an enqueued writer if nobody holds it; whether it did. */
  private readonly tryAcquireWrite: Effect.Effect<boolean> = Effect.tx(
    Effect.flatMap(TxRef.get(this.state), (state) =>
      state.writer || state.readers > 0
        ? Effect.succeed(false)
        : Effect.as(TxRef.set(this.state, { ...state, writer: true, writersWaiting: state.writersWaiting - 1 }), true))
  )

  private readonly awaitWritable: Effect.Effect<void> = Effect.tx(
    Effect.flatMap(TxRef.get(this.state), (state) => state.writer || state.readers > 0 ? Effect.txRetry : Effect.void)
  )

  private readonly releaseWrite: Effect.Effect<void> = Effect.tx(
    TxRef.update(this.state, (state) => ({ ...state, writer: false }))
  )

  /** Acquires a read share; call in an uninterruptible region, `restore` being its mask. */
  private acquireRead(restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>): Effect.Effect<void> {
    const attempt: Effect.Effect<void> = Effect.flatMap(
      this.tryAcquireRead,
      (acquired) => acquired ? Effect.void : Effect.flatMap(restore(this.awaitReadable), () => attempt)
    )
    return attempt
  }

  /** Runs `effect` holding the lock shared with other readers. */
  withRead<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) => {
      slowPath.reads++
      return Effect.flatMap(this.acquireRead(restore), () => Effect.ensuring(restore(effect), this.releaseRead))
    })
  }

  /** Runs `effect` holding the lock exclusively, once the readers in progress have finished. */
  withWrite<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.uninterruptibleMask((restore) => {
      slowPath.writes++
      const attempt: Effect.Effect<void> = Effect.flatMap(
        this.tryAcquireWrite,
        (acquired) =>
          acquired
            ? Effect.void
            : Effect.flatMap(Effect.onInterrupt(restore(this.awaitWritable), () => this.dequeueWriter), () => attempt)
      )
      return Effect.flatMap(
        Effect.flatMap(this.enqueueWriter, () => attempt),
        () => Effect.ensuring(restore(effect), this.releaseWrite)
      )
    })
  }

  /**
   * Acquires the read lock for the rest of the current scope: for streams,
   * which hold it across many pulls.
   */
  readonly readScoped: Effect.Effect<void, never, Scope.Scope> = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(this.acquireRead(restore), () => Effect.addFinalizer(() => this.releaseRead))
  )

  /**
   * An effect that runs the synchronous `read` at once if no writer holds the
   * lock (the fast path), else once none does.
   */
  read<A>(read: () => A): Effect.Effect<A> {
    return Effect.suspend(() => this.readFree() ? Effect.succeed(read()) : this.withRead(Effect.sync(read)))
  }

  /**
   * An effect that runs the synchronous `write` at once if the lock is free
   * (the fast path), else once it holds the lock exclusively.
   */
  write<A>(write: () => A): Effect.Effect<A> {
    return Effect.suspend(() => this.writeFree() ? Effect.succeed(write()) : this.withWrite(Effect.sync(write)))
  }
}
