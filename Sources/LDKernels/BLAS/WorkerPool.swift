#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Dispatch

/// The engine's own worker threads: `run(parts, body)` calls body(0) on the calling thread and body(1...)
/// on parked helper threads, and returns when all are done.
///
/// Unlike `DispatchQueue.concurrentPerform` (which copies its closure into a heap block on every call) this
/// allocates nothing per call: the caller's closure is parked in a preallocated slot, which is cleared
/// only after every part has returned. A call made while the pool is busy (from a helper, or
/// from a second thread) runs its parts inline, so nesting can never deadlock.
public final class WorkerPool: @unchecked Sendable {
    public typealias Body = (Int) -> Void

    public static let shared = WorkerPool()

    /// The running job (set only while `run` waits for it).
    private let slot: UnsafeMutablePointer<Body?>
    private var starts: [DispatchSemaphore] = []
    private let done = DispatchSemaphore(value: 0)
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    private init() {
        slot = .allocate(capacity: 1)
        slot.initialize(to: nil)
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    /// Starts helper threads until there are `count`.
    private func ensureHelpers(_ count: Int) {
        while starts.count < count {
            let index = starts.count
            let sem = DispatchSemaphore(value: 0)
            starts.append(sem)
            let box = Unmanaged.passRetained(HelperContext(pool: self, index: index, start: sem))
            var tid = pthread_t()
            let rc = pthread_create(&tid, nil, { raw in
                let ctx = Unmanaged<HelperContext>.fromOpaque(raw!).takeRetainedValue()
                ctx.pool.helperLoop(ctx.index, ctx.start)
                return nil
            }, box.toOpaque())
            if rc != 0 { box.release(); starts.removeLast(); return }
            pthread_detach(tid)
        }
    }

    private func helperLoop(_ index: Int, _ start: DispatchSemaphore) {
        while true {
            start.wait()
            slot.pointee!(index + 1)
            done.signal()
        }
    }

    /// Runs body(0..<parts) in parallel (parts − 1 helpers plus the caller).
    public func run(_ parts: Int, _ body: Body) {
        if parts <= 1 { if parts == 1 { body(0) }; return }
        guard pthread_mutex_trylock(mutex) == 0 else {
            for p in 0..<parts { body(p) }
            return
        }
        defer { pthread_mutex_unlock(mutex) }
        ensureHelpers(parts - 1)
        let helpers = min(parts - 1, starts.count)
        withoutActuallyEscaping(body) { escapable in
            slot.pointee = escapable
            fire(helpers, parts)
            slot.pointee = nil
        }
    }

    private func fire(_ helpers: Int, _ parts: Int) {
        let job = slot.pointee!
        for i in 0..<helpers { starts[i].signal() }
        job(0)
        for p in (helpers + 1)..<parts { job(p) }   // only if threads could not be started
        for _ in 0..<helpers { done.wait() }
    }
}

private final class HelperContext {
    let pool: WorkerPool, index: Int, start: DispatchSemaphore
    init(pool: WorkerPool, index: Int, start: DispatchSemaphore) { self.pool = pool; self.index = index; self.start = start }
}
