#if canImport(Glibc)
import Glibc
#endif

/// A progress line on stderr for anything that runs longer than a few seconds: what is done, the rate and the
/// time left.
///
/// On a terminal the line is redrawn in place (`\r`) at most about six times a second; otherwise (a log file,
/// CI) a plain line is written every `logInterval` seconds, so long runs leave a readable trace. `quiet`
/// silences it entirely. Never writes to stdout, which belongs to data.
public final class Progress {
    private let label: String
    private let unit: String
    private var total: Int
    private let start: Double
    private var lastDraw: Double = -1
    private let tty: Bool
    private let enabled: Bool
    private let logInterval: Double
    private var drewInPlace = false

    /// - Parameters:
    ///   - label: what is running, e.g. `epoch 3/30` or `class 4`.
    ///   - total: units of work expected (images, iterations, records); 0 if unknown (no time left is shown).
    ///   - unit: the unit of the rate, e.g. `img`.
    ///   - quiet: print nothing.
    public init(_ label: String, total: Int, unit: String = "img", quiet: Bool = false, logInterval: Double = 30) {
        self.label = label
        self.total = total
        self.unit = unit
        self.start = Progress.now()
        self.tty = isatty(2) == 1 && getenv("LD_NO_TTY") == nil
        self.enabled = !quiet
        self.logInterval = logInterval
    }

    /// Reports `done` units finished; `detail` (losses, accuracy) is appended. Cheap to call every step.
    public func update(_ done: Int, _ detail: String = "") {
        guard enabled else { return }
        let t = Progress.now()
        let interval = tty ? 0.16 : logInterval
        if lastDraw >= 0 && t - lastDraw < interval { return }
        if lastDraw < 0 && !tty && t - start < logInterval { return }
        lastDraw = t
        draw(done, detail, final: false, at: t)
    }

    /// Prints the closing line (always, unless quiet) and ends it with a newline.
    public func finish(_ done: Int, _ detail: String = "") {
        guard enabled else { return }
        draw(done, detail, final: true, at: Progress.now())
    }

    private func draw(_ done: Int, _ detail: String, final: Bool, at t: Double) {
        let elapsed = max(t - start, 1e-9)
        let rate = Double(done) / elapsed
        var line = "\(label)  "
        line += total > 0 ? "\(done)/\(total) \(unit)" : "\(done) \(unit)"
        line += "  " + Progress.formatRate(rate) + " \(unit)/s"
        if final {
            line += "  " + Progress.formatDuration(elapsed)
        } else if total > 0 && rate > 0 {
            line += "  " + Progress.formatDuration(Double(total - done) / rate) + " left"
        }
        if !detail.isEmpty { line += "  " + detail }
        var out = tty ? "\r\u{1B}[K" + line : line
        if final || !tty { out += "\n" }
        out.withCString { p in _ = write(2, p, strlen(p)) }
    }

    /// `12.3k`, `456`, `7.89`: three significant figures.
    public static func formatRate(_ r: Double) -> String {
        if r >= 1e6 { return fmt(r / 1e6, 1) + "M" }
        if r >= 1e4 { return fmt(r / 1e3, 1) + "k" }
        if r >= 100 { return fmt(r, 0) }
        return fmt(r, 2)
    }

    /// `1:02:03`, `4:05`, `6.0s`.
    public static func formatDuration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        if s < 60 { return fmt(s, 1) + "s" }
        let total = Int(s.rounded())
        let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60)
        let mm = m < 10 && h > 0 ? "0\(m)" : "\(m)"
        let ss = sec < 10 ? "0\(sec)" : "\(sec)"
        return h > 0 ? "\(h):\(mm):\(ss)" : "\(mm):\(ss)"
    }

    private static func fmt(_ x: Double, _ digits: Int) -> String {
        var p = 1.0
        for _ in 0..<digits { p *= 10 }
        let v = (x * p).rounded() / p
        if digits == 0 { return String(Int(v)) }
        let s = String(v)
        // pad to the requested number of decimals
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            return decimals >= digits ? s : s + String(repeating: "0", count: digits - decimals)
        }
        return s + "." + String(repeating: "0", count: digits)
    }

    /// Monotonic seconds.
    public static func now() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }
}

/// Lines for people, on stderr (stdout belongs to data).
public enum Log {
    public static func line(_ s: String) {
        let text = s + "\n"
        text.withCString { p in _ = write(2, p, strlen(p)) }
    }
}

/// A job's channel to the person running it: one-line notes and progress on stderr (stdout belongs to
/// data), nothing with `quiet`, detail only with `verbose`.
public struct Console: Sendable {
    public var quiet: Bool
    public var verbose: Bool

    public init(quiet: Bool = false, verbose: Bool = false) {
        self.quiet = quiet
        self.verbose = verbose
    }

    /// A line unless quiet.
    public func say(_ line: @autoclosure () -> String) {
        if !quiet { Log.line(line()) }
    }

    /// A line only when verbose (and not quiet).
    public func detail(_ line: @autoclosure () -> String) {
        if verbose && !quiet { Log.line(line()) }
    }

    /// A progress line for `total` units (see `Progress`), silent when quiet.
    public func progress(_ label: String, total: Int, unit: String = "img") -> Progress {
        Progress(label, total: total, unit: unit, quiet: quiet)
    }
}
