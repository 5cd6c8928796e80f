import CBuildInfo

/// Project-wide constants.
public enum LD {
    /// The version every tool reports and writes into the headers of the streams it produces.
    public static let version = "0.1.0"

    /// The git revision of the last `make build` (12 hex digits, `-dirty` with uncommitted changes;
    /// `unknown` for a build outside a git checkout or by `swift build` alone before any `make build`).
    public static let revision = String(cString: ld_revision())

    /// What `--version` prints: `0.1.0 (revision 1a2b3c4d5e6f)`.
    public static var versionLine: String { "\(version) (revision \(revision))" }
}
