/// lockscope's version: what `lockscope --version` prints and what exports name as their writer
/// (speedscope's `exporter`, `lockscope@0.1.0`).
public enum LockscopeVersion {
    public static let current = "0.1.0"
}
