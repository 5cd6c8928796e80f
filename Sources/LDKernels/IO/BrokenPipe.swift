/// Thrown when stdout's reader has gone away (`| head`): the tool stops quietly with status 0.
///
/// `OutputFile` throws it on EPIPE; `ToolMain.run` (which ignores SIGPIPE) maps it to a clean exit.
public struct BrokenPipe: Error {
    public init() {}
}
