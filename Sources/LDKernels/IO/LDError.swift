/// The one error type of ld: a single line that names the problem (file, record, field, expected and got).
///
/// Tools print it as `ld-tool: <message>` on stderr and exit 1 (see `ToolMain.run`).
public struct LDError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
