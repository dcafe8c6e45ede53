import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LockscopeCore
import Testing
@testable import LockscopeExport

@Suite struct TimelineSVGTests {
    /// The elements of a timeline SVG, read with a real XML parser (which fails on anything not well-formed).
    final class Reader: NSObject, XMLParserDelegate {
        struct Panel {
            var name: String
            var title = ""
            var series: [[String: String]] = []
            var legend: [String] = []
            var yTicks: [String] = []
            var xTicks: [String] = []
            var unit = ""
        }
        var root: [String: String] = [:]
        var panels: [Panel] = []
        var binTitles: [String] = []
        var texts: [String] = []
        var elementNames: Set<String> = []
        private var classes: [String] = []
        private var text = ""

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elementNames.insert(name)
            if name == "svg" { root = attributes }
            let cls = attributes["class"] ?? ""
            if name == "g" && cls == "panel" { panels.append(Panel(name: attributes["data-panel"] ?? "")) }
            if name == "path" && cls == "series" { panels[panels.count - 1].series.append(attributes) }
            if name == "g" && cls == "legend-item" { panels[panels.count - 1].legend.append(attributes["data-series"] ?? "") }
            classes.append(cls)
            text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            let cls = classes.removeLast()
            if name == "text" { texts.append(text) }
            if name == "title" && classes.last == "" && classes.dropLast().last == "bins" { binTitles.append(text) }
            guard !panels.isEmpty, classes.contains("panel") else { return }
            switch (name, cls) {
            case ("text", "panel-title"): panels[panels.count - 1].title = text
            case ("text", "unit"): panels[panels.count - 1].unit = text
            case ("text", "tick") where classes.last == "y-axis": panels[panels.count - 1].yTicks.append(text)
            case ("text", "tick") where classes.last == "x-axis": panels[panels.count - 1].xTicks.append(text)
            default: break
            }
        }

        static func read(_ svg: String) throws -> Reader {
            let reader = Reader()
            let parser = XMLParser(data: Data(svg.utf8))
            parser.delegate = reader
            #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
            return reader
        }
    }

    /// The committed SVG that CI checks in Chromium is what this code draws from the committed profile.
    @Test func goldenFile() throws {
        let profile = try Fixtures.profile("containerd-storm")
        try Fixtures.expectGolden(try TimelineSVG.render(profile, source: "containerd-storm.json"), "containerd-storm.timeline.svg")
    }

    @Test func panelsSeriesAxesAndLegends() throws {
        let reader = try Reader.read(try TimelineSVG.render(try Fixtures.profile("containerd-storm"), source: "f.json"))
        #expect(reader.root["data-columns"] == "12" && reader.root["data-seconds-per-column"] == "1.00" && reader.root["width"] == "1000")
        #expect(!reader.elementNames.contains("script") && !reader.elementNames.contains("image"))
        #expect(reader.panels.map(\.name) == ["wait", "victims", "mounts", "starts"])
        #expect(reader.panels.map(\.title) == ["Lock wait per second", "Victims: wait per second and longest wait",
                                               "Mount syscalls per second", "Containers started per second"])
        #expect(reader.panels.map { $0.series.compactMap { $0["data-series"] } } == [
            ["namespace_sem_wait", "mount_lock_wait", "other_wait"], ["victim_wait", "victim_max_wait"], ["mount_ops"],
            ["containers_started"]])
        #expect(reader.panels.allSatisfy { $0.legend == $0.series.compactMap { $0["data-series"] } })
        #expect(reader.panels.map(\.unit) == ["s per s", "s", "per s", "per s"])
        // 1.40 s/s at the peak: a 1.5 s axis in steps of 0.5; 120 ops/s: 150 in steps of 50; starts count whole.
        #expect(reader.panels.map(\.yTicks) == [["0", "0.5", "1", "1.5"], ["0", "0.5", "1", "1.5"], ["0", "50", "100", "150"], ["0", "1"]])
        #expect(reader.panels[0].xTicks == ["0 s", "2 s", "4 s", "6 s", "8 s", "10 s", "12 s"])
        #expect(reader.panels[0].series.map { $0["data-peak"] } == ["1400000000.00", "2600000.00", "900000.00"])
        #expect(reader.panels[2].series[0]["data-peak"] == "120.00")
        // Second 4's namespace_sem wait, 1.40 s, stands at 214 - 1.4/1.5 * 120 = 102 px (the plot spans 94...214).
        let wait = try #require(reader.panels[0].series[0]["d"])
        #expect(wait.hasPrefix("M90.00 214.00H163.33V213.84H236.67V199.60H310.00V148.40H383.33V102.00H456.67"))
        #expect(wait.hasSuffix("V214.00H90.00Z"))
        // A bar per started container, none where nothing started.
        let bars = try #require(reader.panels[3].series[0]["d"])
        #expect(bars.components(separatedBy: "M").count - 1 == 3)
        #expect(reader.binTitles.count == 12)
        #expect(reader.binTitles[4] == """
            4 s–5 s
            containers started: 0/s
            mount ops: 120/s
            namespace_sem wait: 1.40 s/s
            mount_lock wait: 2.60 ms/s
            other locks' wait: 900 us/s
            victim wait per second: 1.15 s/s
            longest victim wait: 412 ms
            """)
    }

    @Test func titleAndHostAreEscaped() throws {
        var profile = try Fixtures.profile("containerd-storm")
        profile.hostname = "node <&> \"b\"\u{01}"
        let svg = try TimelineSVG.render(profile, source: "f.json", options: .init(title: "Storm </svg><script>"))
        let reader = try Reader.read(svg)
        #expect(!reader.elementNames.contains("script"))
        #expect(reader.texts.contains("Storm </svg><script>"))
        #expect(reader.texts.contains("node <&> \"b\"\u{FFFD}, kernel 6.12.0-31-amd64, recorded 2026-12-01T09:30:00Z for 12.0 s"))
    }

    @Test func aProfileWithoutATimelineOfTwoSecondsIsRefused() throws {
        var profile = try Fixtures.profile("containerd-storm")
        profile.timeline = nil
        #expect(throws: UserError("old.json has no timeline: it was recorded before lockscope kept one; record it again")) {
            try TimelineSVG.render(profile, source: "old.json")
        }
        profile.timeline = Timeline(binNs: 1_000_000_000, bins: [TimelineBin(startNs: 0, mountOps: 3)])
        #expect(throws: UserError("short.json's timeline has 1 second: nothing to draw over time; record for longer")) {
            try TimelineSVG.render(profile, source: "short.json")
        }
    }

    /// 2000 seconds in an 880-pixel plot: 3 seconds a column (667 columns, the last of 2 seconds),
    /// averaged per second, the longest wait the longest; the file stays small.
    @Test func aLongRecordingIsMergedEvenlyIntoOneColumnAPixel() throws {
        var profile = try Fixtures.profile("containerd-storm")
        profile.timeline = Timeline(binNs: 1_000_000_000, bins: (0..<2000).map { second in
            TimelineBin(startNs: UInt64(second) * 1_000_000_000, mountOps: UInt64(second % 3 == 0 ? 9 : 0),
                        victimMaxWaitNs: UInt64(second) * 1_000)
        })
        let svg = try TimelineSVG.render(profile, source: "long.json")
        let reader = try Reader.read(svg)
        #expect(reader.root["data-columns"] == "667" && reader.root["data-seconds-per-column"] == "3.00")
        #expect(reader.binTitles.count == 667)
        #expect(reader.binTitles[0].hasPrefix("0 s–3 s\ncontainers started: 0/s\nmount ops: 3.00/s\n"))
        #expect(reader.binTitles[666].hasPrefix("1998 s–2000 s\n"))
        #expect(reader.binTitles[666].hasSuffix("longest victim wait: 2.00 ms"))
        #expect(reader.texts.contains { $0.hasSuffix("for 12.0 s; a point is 3 s, averaged (longest wait: the longest)") },
                "the subtitle gives the profile's duration")
        // Every full column averages 9 ops over 3 s; the last, 1998-1999, 9 over 2 s.
        #expect(reader.panels[2].series[0]["data-peak"] == "4.50")
        #expect(svg.utf8.count < 400_000)
    }

    @Test func emptySecondsStillGetAxes() throws {
        var profile = try Fixtures.profile("containerd-storm")
        profile.timeline = Timeline(binNs: 1_000_000_000, bins: (0..<3).map { TimelineBin(startNs: UInt64($0) * 1_000_000_000) })
        let reader = try Reader.read(try TimelineSVG.render(profile, source: "f.json"))
        #expect(reader.panels.map(\.yTicks) == [["0", "0.25", "0.5", "0.75", "1"], ["0", "0.25", "0.5", "0.75", "1"], ["0", "1"], ["0", "1"]])
        #expect(reader.panels.map(\.unit) == ["us per s", "us", "per s", "per s"])
        #expect(reader.panels[3].series[0]["d"] == "M90.00 766.00H970.00", "no bars: the baseline")
    }

    @Test func scales() {
        #expect(XScale(seconds: 12).ticks == [0, 2, 4, 6, 8, 10, 12])
        #expect(XScale(seconds: 3600).ticks.count == 7 && XScale(seconds: 3600).step == 600)
        #expect([0, 1.5, 90, 600, 3600, 5400].map(XScale.seconds) == ["0 s", "1.5 s", "90 s", "10 min", "1 h", "1 h 30 min"])
        let wait = YScale(highest: 1_400_000_000, quantity: .waitPerSecond, top: 0, height: 100)
        #expect(wait.ticks.map(wait.label) == ["0", "0.5", "1", "1.5"] && wait.unit == "s per s")
        let longest = YScale(highest: 412_000_000, quantity: .longestWait, top: 0, height: 100)
        #expect(longest.ticks.map(longest.label) == ["0", "200", "400", "600"] && longest.unit == "ms")
        let small = YScale(highest: 2_600_000, quantity: .waitPerSecond, top: 0, height: 100)
        #expect(small.ticks.map(small.label) == ["0", "1", "2", "3"] && small.unit == "ms per s")
        #expect(longest(0) == 100 && longest(300_000_000) == 50 && longest(600_000_000) == 0)
    }
}
