import Foundation
import FoundationXML
import LockscopeCore
import Testing

@testable import LockscopeExport

/// The sweep chart, from a real sweep of this machine (`lockscope sweep --parallel 1,2,4,8,16 --cpus 0
/// --runs 3 --containers 48 --layers 16 -o Fixtures/sweep.json`; the golden sweep.svg is rendered from it).
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
        // The set-up panel's line for "cpus:0" passes through its median at parallel 8 (0.482 ms).
        let point = try #require(sweep.points.first { $0.placement == "cpus:0" && $0.parallel == 8 })
        #expect(abs(point.spread(.setupP99).median - 0.482) < 0.0005)
        #expect(sweep.confinement == .cpusetV1)
        #expect(svg.contains("cpuset-v1 confinement"))
    }

    /// Three runs a point: every band runs from the lowest run (its lower edge) to the highest (its upper
    /// edge, smaller y), with the median line between them, and has height where the runs disagreed.
    @Test func eachBandSpansTheRunsAroundTheMedian() throws {
        let sweep = try Self.sweep()
        #expect(sweep.points.allSatisfy { $0.runs.count == 3 })
        let svg = try SweepSVG.render(sweep)
        func vertices(_ element: String, _ series: String, after panel: String) throws -> [(x: Double, y: Double)] {
            let start = try #require(svg.range(of: "data-panel=\"\(panel)\""))
            let tag = try #require(svg.range(of: "<path class=\"\(element)\" data-series=\"\(series)\"", range: start.upperBound..<svg.endIndex))
            let d = try #require(svg[tag.upperBound...].range(of: " d=\"")).upperBound
            let end = try #require(svg[d...].firstIndex(of: "\""))
            return svg[d..<end].replacingOccurrences(of: "M", with: "").replacingOccurrences(of: "L", with: "")
                .replacingOccurrences(of: "Z", with: "").split(separator: " ").map {
                    let xy = $0.split(separator: ",").map { Double($0)! }
                    return (xy[0], xy[1])
                }
        }
        var tallest = 0.0
        for panel in ["setup", "wait"] {
            for placement in sweep.placements.map(\.name) {
                let band = try vertices("band", placement, after: panel)
                let line = try vertices("series", placement, after: panel)
                let n = band.count / 2
                #expect(band.count == 2 * sweep.points(of: placement).count && line.count == n)
                for i in 0..<n {
                    let (upper, lower) = (band[i], band[band.count - 1 - i])
                    #expect(upper.x == lower.x && upper.x == line[i].x)
                    #expect(upper.y <= line[i].y && line[i].y <= lower.y, "\(panel)/\(placement) at x=\(upper.x)")
                    tallest = max(tallest, lower.y - upper.y)
                }
            }
        }
        #expect(tallest > 1, "every band is flat: the runs never disagreed")
    }

    @Test func anEmptySweepIsRefusedInOneLine() {
        let empty = Sweep(hostname: "h", kernel: "k", startedAt: "t", topology: nil, confinement: .affinity, workload: "w",
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
