import LockscopeCore
import Testing
@testable import LockscopeExport

@Suite struct CSVExporterTests {
    @Test func goldenFile() throws {
        try Fixtures.expectGolden(CSVExporter.render(try Fixtures.profile()), "mount-storm.csv")
    }

    @Test func oneRowPerLockAndDimensionValue() throws {
        let profile = try Fixtures.profile()
        let rows = CSVExporter.render(profile).components(separatedBy: "\r\n").dropLast()
        #expect(rows.first == "lock,kind,identity,address,instances,dimension,key,contentions,total_wait_ns,mean_wait_ns,min_wait_ns,max_wait_ns,p50_wait_ns,p90_wait_ns,p99_wait_ns,p999_wait_ns")
        // namespace_sem: total + 2 cpus + 2 sockets + 2 nodes + 2 llcs + 3 containers + 2 processes + 2 hand-offs;
        // mount_lock: total + 2 cpus + 2 sockets + 2 containers + 2 hand-offs.
        #expect(rows.count == 1 + 16 + 9)
        #expect(rows.filter { $0.hasPrefix("namespace_sem,") }.count == 16)
        #expect(rows.contains("namespace_sem,rwsem,inferred,0xffffffff9a2c5e40,1,total,,11,1000000,90909,20000,240000,80000,200000,240000,240000"))
        #expect(rows.contains { $0.hasPrefix("namespace_sem,rwsem,inferred,0xffffffff9a2c5e40,1,handoff,other_socket,6,600000,") })
        // Each lock's hand-offs add up to its contentions less its one instance (docs/flamegraphs.md).
        for (lock, contentions) in [("namespace_sem", 10), ("mount_lock", 5)] {
            let handoffs = rows.filter { $0.hasPrefix(lock + ",") && $0.contains(",handoff,") }
            #expect(handoffs.map { Int($0.split(separator: ",")[7])! }.reduce(0, +) == contentions)
        }
        #expect(rows.contains { $0.hasPrefix("namespace_sem,rwsem,inferred,0xffffffff9a2c5e40,1,process,\"4802 sh -c \"\"mount, umount\"\"\",3,200000,") })
    }

    @Test func fieldsAreQuotedPerRFC4180() {
        #expect(CSVExporter.field("plain text") == "plain text")
        #expect(CSVExporter.field("a,b") == "\"a,b\"")
        #expect(CSVExporter.field("say \"hi\"") == "\"say \"\"hi\"\"\"")
        #expect(CSVExporter.field("two\nlines") == "\"two\nlines\"")
        #expect(CSVExporter.field("crlf\r\n") == "\"crlf\r\n\"")
    }
}
