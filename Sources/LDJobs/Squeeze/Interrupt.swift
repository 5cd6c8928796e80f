import LDKernels
import LDRecords
import LDData
import LDNetworks
#if canImport(Glibc)
import Glibc
#endif

/// SIGINT/SIGTERM as a request to stop, for long runs that checkpoint: the run polls `requested` between
/// steps, writes its checkpoint and exits with `exitStatus` (130 for SIGINT, 143 for SIGTERM).
///
/// `install()` takes the signals over from `TempFiles` (whose default handler deletes temporary outputs and
/// exits at once). A second signal while a stop is pending exits immediately, deleting temporary outputs
/// first, so an impatient user is never stuck.
public enum Interrupt {
    /// The signal received (0 while none); written only by the handler.
    private static let signalSeen: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        p.initialize(to: 0)
        return p
    }()

    /// Routes SIGINT and SIGTERM to the stop request. Idempotent.
    public static func install() {
        let p = signalSeen   // initialise the global outside the handler
        _ = p
        TempFiles.leaveSignalsToCaller()
        let handler: @convention(c) (Int32) -> Void = { sig in
            let seen = Interrupt.signalSeen
            if seen.pointee != 0 {
                TempFiles.unlinkAll()
                _exit(128 + sig)
            }
            seen.pointee = sig
        }
        signal(SIGINT, handler)
        signal(SIGTERM, handler)
    }

    /// Whether a stop was requested.
    public static var requested: Bool { signalSeen.pointee != 0 }

    /// The conventional exit status for the signal received (128 + signal number), or 0.
    public static var exitStatus: Int32 { signalSeen.pointee == 0 ? 0 : 128 + signalSeen.pointee }

    /// Simulates a signal (tests, and runs that want to stop after a given step).
    public static func request(_ sig: Int32 = SIGINT) { signalSeen.pointee = sig }

    /// Clears a pending request.
    public static func reset() { signalSeen.pointee = 0 }
}
