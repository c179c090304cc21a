/**
 * The change stream's fan-out. Writers call `emit` synchronously, at the
 * point a write is applied to the index (under the write lock, or on its
 * fast path), so every subscriber sees the events in the order the writes
 * took effect.
 *
 * With nobody subscribed the store pays one property read per write
 * (`active`). A subscriber has a bounded buffer of its own; a writer never
 * waits for a subscriber. When a buffer is full the event is dropped for
 * that subscriber alone and counted, and the subscriber receives one
 * `Lagged` event with the count as soon as its buffer has room: a slow
 * consumer learns exactly how much it missed, and nobody else is affected.
 */
import type * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Queue from "effect/Queue"
import * as Stream from "effect/Stream"
import type { ChangeEvent, ChangesOptions } from "../../KeyValueStore.ts"
import { InvalidInput } from "../errors.ts"

export const defaultChangeBufferSize = 4096

interface Subscriber {
  readonly queue: Queue.Queue<ChangeEvent, Cause.Done>
  /** Events dropped since the last `Lagged` event this subscriber received. */
  dropped: number
}

export class ChangeHub {
  /** Whether anyone is subscribed: the one check a write makes. */
  active = false
  private readonly subscribers = new Set<Subscriber>()
  private closed = false

  get subscriberCount(): number {
    return this.subscribers.size
  }

  emit(event: ChangeEvent): void {
    for (const subscriber of this.subscribers) {
      const queue = subscriber.queue
      if (subscriber.dropped > 0) {
        if (!Queue.offerUnsafe(queue, { _tag: "Lagged", dropped: subscriber.dropped })) {
          subscriber.dropped++
          continue
        }
        subscriber.dropped = 0
      }
      if (!Queue.offerUnsafe(queue, event)) subscriber.dropped++
    }
  }

  /** A stream of the events from the moment it starts running. */
  subscribe(bufferSize: number): Stream.Stream<ChangeEvent> {
    const hub = this
    return Stream.unwrap(Effect.gen(function*() {
      const queue = yield* Queue.bounded<ChangeEvent, Cause.Done>(bufferSize)
      // A store already closed has no more events to give: the stream ends.
      if (hub.closed) {
        Queue.endUnsafe(queue)
        return Stream.fromQueue(queue)
      }
      const subscriber: Subscriber = { queue, dropped: 0 }
      hub.subscribers.add(subscriber)
      hub.active = true
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          hub.subscribers.delete(subscriber)
          hub.active = hub.subscribers.size > 0
        })
      )
      return Stream.fromQueue(queue)
    }))
  }

  /** `changesWith` of every store: the options checked, then a subscription. */
  subscribeWith(options: ChangesOptions): Stream.Stream<ChangeEvent, InvalidInput> {
    const bufferSize = options.bufferSize ?? defaultChangeBufferSize
    if (!(Number.isSafeInteger(bufferSize) && bufferSize >= 2)) {
      // Two at least: room for a `Lagged` event and the event after it.
      return Stream.fail(
        new InvalidInput({ message: `bufferSize must be an integer of at least 2, got ${String(bufferSize)}` })
      )
    }
    return this.subscribe(bufferSize)
  }

  /** The store is closing: every stream ends once it has delivered what it holds. */
  close(): void {
    this.closed = true
    for (const subscriber of this.subscribers) Queue.endUnsafe(subscriber.queue)
    this.subscribers.clear()
    this.active = false
  }
}
