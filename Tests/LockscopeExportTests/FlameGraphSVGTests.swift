import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LockscopeCore
import Testing
@testable import LockscopeExport

@Suite struct FlameGraphSVGTests {
    /// The frames of an SVG, read with a real XML parser (which fails on anything not well-formed).
    final class FrameReader: NSObject, XMLParserDelegate {
        struct Frame {
            var attributes: [String: String]
            var children: [String] = []
            var rect: [String: String] = [:]
            var title = ""
            var label = ""
        }
        var frames: [Frame] = []
        var elementNames: Set<String> = []
        private var path: [String] = []
        private var text = ""

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            elementNames.insert(name)
            if name == "g" && attributes["class"] == "f" {
                frames.append(Frame(attributes: attributes))
            } else if path.last == "g.f" {
                frames[frames.count - 1].children.append(name)
                if name == "rect" { frames[frames.count - 1].rect = attributes }
            }
            path.append(name == "g" && attributes["class"] == "f" ? "g.f" : name)
            text = ""
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            path.removeLast()
            if path.last == "g.f" && name == "title" { frames[frames.count - 1].title = text }
            if path.last == "g.f" && name == "text" { frames[frames.count - 1].label = text }
        }

        static func read(_ svg: String) throws -> FrameReader {
            let reader = FrameReader()
            let parser = XMLParser(data: Data(svg.utf8))
            parser.delegate = reader
            #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
            return reader
        }
    }

    @Test func goldenFiles() throws {
        let profile = try Fixtures.profile()
        try Fixtures.expectGolden(try FlameGraphSVG.render(profile), "mount-storm.svg")
        let options = FlameGraphSVG.Options(weight: .count, grouping: StackGrouping([.container, .lock]), title: "Mount storm <node-a>",
                                            coloring: .container, icicle: true)
        try Fixtures.expectGolden(try FlameGraphSVG.render(profile, options: options), "mount-storm.icicle-container.svg")
    }

    /// 58 containers, each of its own weight, in one lock's stack: more than the legend has room for.
    static func manyContainers(_ count: Int = 58) -> Profile {
        let ids = (0..<count).map { index in String(repeating: String(format: "%02x", index), count: 32) }
        let contexts = ids.enumerated().map { StackContext(cpu: 0, container: $1, count: 1, totalWaitNs: UInt64(1_000 * ($0 + 1))) }
        let waitNs = contexts.reduce(0) { $0 + $1.totalWaitNs }
        let stack = StackProfile(frames: ["queued_spin_lock_slowpath", "_raw_spin_lock", "path_umount", "__x64_sys_umount"],
                                 count: UInt64(count), totalWaitNs: waitNs, maxWaitNs: 58_000, contexts: contexts)
        return makeProfile(locks: [LockProfile(name: "mount_lock", identity: .caller, kind: .spinlock, address: "0x1",
                                               stats: makeStats(UInt64(count), waitNs), stacks: [stack])])
    }

    /// The legend shows the heaviest containers that fit, then "and N more" (what scripts/check-flamegraph-svg.sh
    /// checks in Chromium on this golden file), and the hint is the bottom line.
    @Test func theLegendSaysHowManyMoreThereAre() throws {
        let options = FlameGraphSVG.Options(grouping: StackGrouping([.container, .lock]), coloring: .container)
        let svg = try FlameGraphSVG.render(Self.manyContainers(), options: options)
        try Fixtures.expectGolden(svg, "many-containers.svg")
        let legend = try #require(svg.split(separator: "\n").first { $0.hasPrefix("<g id=\"legend\"") })
        #expect(legend.hasPrefix("<g id=\"legend\" data-entries=\"58\">"))
        let swatches = legend.components(separatedBy: "<rect ").count - 1
        #expect(swatches > 0 && swatches < 58)
        #expect(legend.contains(">and \(58 - swatches) more</text></g></g>"), "\(legend)")
        // Heaviest first: container 57's id leads, and the tooltip lists the first hidden one.
        #expect(legend.contains(">393939393939</text>"))
        #expect(legend.contains("<title>\(String(repeating: String(format: "%02x", 57 - swatches), count: 6))&#10;"))
        #expect(svg.contains(">\(FlameGraphSVG.hint)</text>"))
        // All fit: no "more".
        let few = try FlameGraphSVG.render(Self.manyContainers(3), options: options)
        #expect(!few.contains("legend-more") && few.contains("<g id=\"legend\" data-entries=\"3\">"))
    }

    @Test func oneWellFormedElementPerFrame() throws {
        let profile = try Fixtures.profile()
        let reader = try FrameReader.read(try FlameGraphSVG.render(profile))
        // Distinct root-to-leaf prefixes of the folded paths, plus the root `all`.
        var prefixes: Set<[String]> = []
        for line in FoldedExporterTests.parse(try FoldedExporter.render(profile)) {
            for length in 1...line.frames.count { prefixes.insert(Array(line.frames.prefix(length))) }
        }
        #expect(reader.frames.count == prefixes.count + 1)
        #expect(reader.frames.count == 33)
        #expect(reader.frames.allSatisfy { $0.children == ["title", "rect", "text"] })
        #expect(!reader.elementNames.contains("image") && !reader.elementNames.contains("foreignObject"))
        let root = try #require(reader.frames.first)
        #expect(root.title == "all\nwait 1.09 ms (100.00%)\n17 contentions (100.00%)")
        #expect(root.rect["x"] == "10.00" && root.rect["width"] == "1180.00")
        let noStack = try #require(reader.frames.first { $0.title.hasPrefix("[no stack]") })
        #expect(noStack.title == "[no stack]\nwait 100 us (9.17%)\n2 contentions (11.76%)")
        #expect(noStack.attributes["data-w"] == "100000")
    }

    @Test func selfContained() throws {
        let svg = try FlameGraphSVG.render(try Fixtures.profile())
        for external in ["href", "src=", "url(", "@import", "@font-face", "https://"] {
            #expect(!svg.contains(external), "\(external)")
        }
        #expect(svg.components(separatedBy: "http://").count == 2, "only the SVG namespace")
    }

    @Test func iciclePutsTheRootOnTop() throws {
        let profile = try Fixtures.profile()
        let flame = try FrameReader.read(try FlameGraphSVG.render(profile))
        let icicle = try FrameReader.read(try FlameGraphSVG.render(profile, options: .init(icicle: true)))
        // 12 levels: the flame graph's root is on the last row, the icicle's on the first.
        #expect(flame.frames[0].rect["y"] == "248.00")
        #expect(icicle.frames[0].rect["y"] == "72.00")
        #expect(flame.frames.count == icicle.frames.count)
    }

    @Test func labelsAreTruncatedToFit() {
        #expect(FlameGraphSVG.label("entry_SYSCALL_64_after_hwframe", width: 300) == "entry_SYSCALL_64_after_hwframe")
        // (100 - 6) / 7.3 = 12 characters: 10 and "..".
        #expect(FlameGraphSVG.label("entry_SYSCALL_64_after_hwframe", width: 100) == "entry_SYSC..")
        #expect(FlameGraphSVG.label("do_mount", width: 100) == "do_mount")
        #expect(FlameGraphSVG.label("do_mount", width: 42.5) == "do_..")
        #expect(FlameGraphSVG.label("do_mount", width: 42.4) == "do..")
        #expect(FlameGraphSVG.label("do_mount", width: 27.9) == "d..")
        #expect(FlameGraphSVG.label("do_mount", width: 27.8) == "")
    }

    @Test func coloursAreDeterministicPerKindAndContainer() throws {
        let profile = try Fixtures.profile()
        #expect(try FlameGraphSVG.render(profile) == FlameGraphSVG.render(profile))
        let byKind = try FrameReader.read(try FlameGraphSVG.render(profile))
        func fill(_ reader: FrameReader, _ title: String) -> String? {
            reader.frames.first { $0.title.hasPrefix(title + "\n") }?.rect["fill"]
        }
        #expect(fill(byKind, "down_write") == Palette.frame(name: "down_write", baseHue: Palette.hue(kind: .rwsem)).hex)
        #expect(fill(byKind, "queued_spin_lock_slowpath") == Palette.frame(name: "queued_spin_lock_slowpath", baseHue: Palette.hue(kind: .spinlock)).hex)
        #expect(fill(byKind, "[lock] namespace_sem") == Palette.groupFrame(name: "[lock] namespace_sem").hex)
        // do_syscall_64 carries both kinds when grouped by nothing: neutral grey.
        let mixed = try FrameReader.read(try FlameGraphSVG.render(profile, options: .init(grouping: .none)))
        #expect(fill(mixed, "do_syscall_64") == Palette.neutralVariant(name: "do_syscall_64").hex)
        let byContainer = try FrameReader.read(try FlameGraphSVG.render(profile, options: .init(grouping: StackGrouping([.container]), coloring: .container)))
        let containerA = "3f2a9c1b7d4e8f60a1b2c3d4e5f60718293a4b5c6d7e8f9012a3b4c5d6e7f801"
        #expect(fill(byContainer, "[no stack]") != nil)
        let downWriteFills = Set(byContainer.frames.filter { $0.title.hasPrefix("down_write\n") }.compactMap { $0.rect["fill"] })
        #expect(downWriteFills.contains(Palette.frame(name: "down_write", baseHue: Palette.hue(container: containerA)).hex))
        #expect(Palette.rgb(hue: 0, saturation: 1, lightness: 0.5) == "#ff0000")
        #expect(Palette.rgb(hue: 240, saturation: 1, lightness: 0.5) == "#0000ff")
        #expect(Palette.rgb(hue: 0, saturation: 0, lightness: 0.5) == "#808080")
    }

    @Test func titlesAndNamesAreEscaped() throws {
        let stack = StackProfile(frames: ["a<b>&\"c\""], count: 1, totalWaitNs: 1_500, maxWaitNs: 1_500, contexts: [])
        let lock = LockProfile(name: "l", identity: .caller, kind: .mutex, address: "0x1", stats: makeStats(1, 1_500), stacks: [stack])
        let svg = try FlameGraphSVG.render(makeProfile(locks: [lock]), options: .init(title: "A & B <\u{1}x>"))
        let reader = try FrameReader.read(svg)
        #expect(svg.contains("<text id=\"title\" x=\"600\" y=\"24\">A &amp; B &lt;\u{FFFD}x&gt;</text>"))
        #expect(reader.frames.last?.title == "a<b>&\"c\"\nwait 1.50 us (100.00%)\n1 contention (100.00%)")
    }

    /// A stack 100 000 frames deep draws every frame (laying it out recursively overflowed the thread's stack).
    @Test func aVeryDeepStackIsDrawn() throws {
        let frames = (0..<100_000).map { "f\($0)" }
        let stack = StackProfile(frames: frames, count: 3, totalWaitNs: 3_000, maxWaitNs: 1_000, contexts: [])
        let lock = LockProfile(name: "deep", identity: .caller, kind: .mutex, address: "0x1", stats: makeStats(3, 3_000), stacks: [stack])
        let svg = try FlameGraphSVG.render(makeProfile(locks: [lock]))
        #expect(svg.components(separatedBy: "<g class=\"f\"").count - 1 == 100_002)  // all, [lock] deep, and the frames
        #expect(svg.contains("height=\"1600132\""))  // 72 header + 100 002 levels of 16 + 28 footer
    }

    /// Past `maxDrawnFrames`, only the widest frames are drawn (here the widest 3, then 4, of a tree of 6).
    @Test func onlyTheWidestFramesAreDrawnBeyondTheLimit() throws {
        let stacks = [(["a", "b"], UInt64(600)), (["a", "c"], 300), (["d"], 100)].map { frames, wait in
            StackProfile(frames: frames, count: 1, totalWaitNs: wait, maxWaitNs: wait, contexts: [])
        }
        let lock = LockProfile(name: "l", identity: .caller, kind: .mutex, address: "0x1", stats: makeStats(3, 1_000), stacks: stacks)
        let tree = FlameTree(try LockSamples(makeProfile(locks: [lock]), grouping: .none), groupDepth: 0)
        #expect(tree.nodes.count == 6)  // all, b, a (under b), c, a (under c), d
        #expect(tree.cut(keeping: 3, .wait) == (weight: 600, ties: 2))
        #expect(tree.layout(weight: .wait, minWeight: 0, maxFrames: 3).map { tree.nodes[$0.node].name } == ["all", "b", "a"])
        // Two frames of 300 ns tie for the fourth place: the first in drawing order is drawn.
        #expect(tree.cut(keeping: 4, .wait) == (weight: 300, ties: 1))
        #expect(tree.layout(weight: .wait, minWeight: 0, maxFrames: 4).map { tree.nodes[$0.node].name } == ["all", "b", "a", "c"])
        #expect(tree.cut(keeping: 6, .wait) == (weight: 0, ties: .max))
        #expect(tree.layout(weight: .wait, minWeight: 0).count == 6)
    }

    @Test func anEmptyProfileSaysSo() throws {
        let svg = try FlameGraphSVG.render(makeProfile(locks: []))
        let reader = try FrameReader.read(svg)
        #expect(reader.frames.isEmpty)
        #expect(svg.contains(">No lock waits recorded.</text>"))
    }
}
