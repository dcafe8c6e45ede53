/// An error the user can act on: its description is one line saying what is wrong and what to do.
/// The CLI prints it as `lockscope: <description>` and exits with status 2.
public struct UserError: Error, CustomStringConvertible, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
