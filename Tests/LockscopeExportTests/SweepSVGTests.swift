import Foundation
import FoundationXML
import LockscopeCore
import Testing

@testable import LockscopeExport

/// The sweep chart, from a real sweep of this machine (`lockscope sweep --parallel 1,2,4,8,16 --cpus 0
/// --runs 1 --containers 16 --layers 5 -o Fixtures/sweep.json`).
struct SweepSVGTests {
    static func sweep() throws -> Sweep {
        let url = try #require(Bundle.module.url(forResource: "sweep", withExtension: "json", subdirectory: "Fixtures"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(Sweep.self, from: Data(contentsOf: url))
    }

    @Test func theChartMatchesItsGoldenFile() throws {
        try Fixtures.expectGolden(try SweepSVG.render(try Self.sweep()), "sweep.svg")
    }

    @Test func eachPanelHasALineAndABandPerPlacementThroughTheMedians() throws {
        let sweep = try Self.sweep()
        let svg = try SweepSVG.render(sweep)
        let document = try XMLDocumentScan(svg)
        #expect(document.count(of: "g", class: "panel") == 2)
        #expect(document.count(of: "path", class: "series") == 2 * sweep.placements.count)
        #expect(document.count(of: "path", class: "band") == 2 * sweep.placements.count)
        #expect(document.count(of: "g", class: "legend-item") == 2 * sweep.placements.count)
        #expect(document.count(of: "rect", class: nil, inside: "bins") == Set(sweep.points.map(\.parallel)).count)
        // The set-up panel's line for "cpus:0" passes through its median at parallel 8 (6.9 ms on a 0-10 ms axis).
        let point = try #require(sweep.points.first { $0.placement == "cpus:0" && $0.parallel == 8 })
        #expect(abs(point.spread(.setupP99).median - 6.9) < 0.05)
    }

    @Test func anEmptySweepIsRefusedInOneLine() {
        let empty = Sweep(hostname: "h", kernel: "k", startedAt: "t", topology: nil, confinement: "affinity", workload: "w",
                          placements: [], points: [])
        #expect(throws: UserError("the sweep has no points: nothing to draw")) { try SweepSVG.render(empty) }
    }
}

/// Counts elements of an SVG by name and class (XMLParser: the file must be well-formed XML).
private final class XMLDocumentScan: NSObject, XMLParserDelegate {
    private var elements: [(name: String, cls: String?, group: String?)] = []
    private var groups: [String?] = []

    init(_ text: String) throws {
        super.init()
        let parser = XMLParser(data: Data(text.utf8))
        parser.delegate = self
        guard parser.parse() else { throw parser.parserError ?? CocoaError(.fileReadCorruptFile) }
    }

    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                attributes: [String: String] = [:]) {
        elements.append((name, attributes["class"], groups.compactMap { $0 }.last))
        if name == "g" { groups.append(attributes["class"]) }
    }

    func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
        if name == "g" { groups.removeLast() }
    }

    func count(of name: String, class cls: String?, inside group: String? = nil) -> Int {
        elements.filter { $0.name == name && (cls == nil || $0.cls == cls) && (group == nil || $0.group == group) }.count
    }
}
