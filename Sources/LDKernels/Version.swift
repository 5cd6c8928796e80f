/// Project-wide constants.
public enum LD {
    /// The version every tool reports and writes into the headers of the streams it produces.
    public static let version = "0.1.0"
}
