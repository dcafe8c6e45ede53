import Foundation
import LockscopeCore

/// How `FlameGraphSVG` colours frames.
public enum FlameColoring: String, CaseIterable, Sendable {
    /// A hue per lock kind (spinlock, rwsem, mutex...).
    case kind
    /// A hue per container, hashed from its id.
    case container
}

/// A self-contained interactive flame graph: one SVG file with its own script and style, no fetches.
///
/// One `<g class="f">` per frame (a rect, a label truncated with `..` to fit, a tooltip). Hover shows the
/// frame's wait, contentions and shares at the bottom; click zooms into a frame; Search (or Ctrl-F)
/// highlights frames matching a regular expression, fading the rest, and shows the share they cover;
/// Reset Zoom (or Escape) goes back. Until a frame is hovered, the bottom line says so (`hint`). The
/// legend under the subtitle shows the hues in use, as many as fit, and then "and N more". Frames are ordered by name, root at the bottom (at the top with
/// `icicle`). Frames narrower than 0.1 px are left out, as flamegraph.pl does, and beyond the
/// `maxDrawnFrames` widest frames (a crafted profile's deep stacks split many ways) the narrower ones too.
public enum FlameGraphSVG {
    public struct Options: Sendable, Equatable {
        public var weight: ExportWeight
        public var grouping: StackGrouping
        /// The heading; `nil` for "Lock wait time" or "Lock contentions", after the weight.
        public var title: String?
        public var coloring: FlameColoring
        /// Root at the top, stacks growing down.
        public var icicle: Bool
        /// What the profile's stacks are (waits, or on-CPU samples through `SampleProfiles.view`): the words
        /// of tooltips, subtitle and default heading.
        public var samples: SampleType

        public init(weight: ExportWeight = .wait, grouping: StackGrouping = .lock, title: String? = nil,
                    coloring: FlameColoring = .kind, icicle: Bool = false, samples: SampleType = .wait) {
            self.weight = weight
            self.grouping = grouping
            self.title = title
            self.coloring = coloring
            self.icicle = icicle
            self.samples = samples
        }
    }

    // Geometry, shared with the script (FlameGraphScript.swift) through attributes on the <svg> element.
    static let imageWidth = 1200.0
    static let sideMargin = 10.0
    static let frameHeight = 16.0
    static let headerHeight = 72.0
    static let footerHeight = 28.0
    static let fontSize = 12.0
    /// Width of one character of the monospace font at `fontSize`, rounded up (DejaVu Sans Mono: 7.22).
    static let charWidth = 7.3
    static let labelPadding = 3.0
    static let minFrameWidth = 0.1
    /// More frames than a browser shows at a usable speed.
    static let maxDrawnFrames = 1_000_000
    static var framesWidth: Double { imageWidth - 2 * sideMargin }
    /// What the bottom line says while no frame is hovered: what the graph does, which nothing else shows.
    static let hint = "Hover a frame for its wait, click it to zoom in; Search (Ctrl-F) highlights frames by regex; Reset Zoom or Esc goes back"

    public static func render(_ profile: Profile, options: Options = Options()) throws -> String {
        let samples = try LockSamples(profile, grouping: options.grouping)
        let tree = FlameTree(samples, groupDepth: options.grouping.dimensions.count)
        let total = tree.nodes[0].amount
        let totalWeight = total.value(options.weight)
        let drawn = totalWeight == 0 ? [] : tree.layout(weight: options.weight, minWeight: Double(totalWeight) * minFrameWidth / framesWidth,
                                                        maxFrames: maxDrawnFrames)
        let levels = drawn.map(\.depth).max().map { $0 + 1 } ?? 2
        let height = headerHeight + Double(levels) * frameHeight + footerHeight
        let words = options.samples.amountWords
        let title = options.title ?? (options.samples != .wait ? options.samples.title
            : options.weight == .wait ? "Lock wait time" : "Lock contentions")

        var frames = "<g id=\"frames\">\n"
        var drewNeutralFrame = false
        for frame in drawn {
            let node = tree.nodes[frame.node]
            let weight = node.amount.value(options.weight)
            let x = sideMargin + Double(frame.offset) / Double(totalWeight) * framesWidth
            let width = Double(weight) / Double(totalWeight) * framesWidth
            let row = options.icicle ? frame.depth : levels - 1 - frame.depth
            let y = headerHeight + Double(row) * frameHeight
            let tooltip = [node.name,
                           "\(words.time) \(Units.duration(node.amount.waitNs)) (\(percent(node.amount.waitNs, of: total.waitNs)))",
                           "\(Units.count(node.amount.contentions, words.count)) (\(percent(node.amount.contentions, of: total.contentions)))"]
            let fill = color(of: node, depth: frame.depth, groupDepth: tree.groupDepth, coloring: options.coloring)
            drewNeutralFrame = drewNeutralFrame || fill.isNeutral
            frames += "<g class=\"f\" data-x=\"\(frame.offset)\" data-w=\"\(weight)\" data-d=\"\(frame.depth)\">"
            frames += "<title>\(escape(tooltip.joined(separator: "\n")))</title>"
            frames += "<rect x=\"\(fixed(x))\" y=\"\(fixed(y))\" width=\"\(fixed(width))\" height=\"\(fixed(frameHeight - 1))\" rx=\"2\" fill=\"\(fill.hex)\"/>"
            frames += "<text x=\"\(fixed(x + labelPadding))\" y=\"\(fixed(y + frameHeight - 4.5))\">\(escape(label(node.name, width: width)))</text></g>\n"
        }
        frames += "</g>\n"

        var svg = """
        <?xml version="1.0" encoding="UTF-8" standalone="no"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(Int(imageWidth))" height="\(Int(height))" \
        viewBox="0 0 \(Int(imageWidth)) \(Int(height))" data-total="\(totalWeight)" data-side-margin="\(sideMargin)" \
        data-char-width="\(charWidth)" data-label-padding="\(labelPadding)" onload="flame.init()">
        <style>
        text { font-family: monospace; font-size: \(Int(fontSize))px; fill: #000; }
        #title { font-size: 17px; text-anchor: middle; }
        #subtitle { fill: #555; text-anchor: middle; }
        .button { fill: #0645ad; cursor: pointer; }
        .hidden { display: none; }
        g.f { cursor: pointer; }
        g.f text { pointer-events: none; }
        g.f:hover rect { stroke: #000; stroke-width: 0.5; }
        g.f.parent { opacity: 0.55; }
        svg.searching g.f:not(.match) { opacity: 0.35; }
        g.f.match rect { fill: #e600e6; }
        </style>
        <script type="text/ecmascript"><![CDATA[\(FlameGraphScript.source)]]></script>
        <rect x="0" y="0" width="\(Int(imageWidth))" height="\(Int(height))" fill="#f8f8f4"/>
        <text id="title" x="\(Int(imageWidth / 2))" y="24">\(escape(title))</text>
        <text id="subtitle" x="\(Int(imageWidth / 2))" y="44">\(escape(subtitle(profile, total: total, options: options)))</text>
        <text id="unzoom" class="button hidden" x="\(Int(sideMargin))" y="24">Reset Zoom</text>
        <text id="search" class="button" x="\(Int(imageWidth - sideMargin))" y="24" text-anchor="end">Search</text>
        <text id="matched" x="\(Int(imageWidth - sideMargin))" y="\(Int(height - 10))" text-anchor="end"> </text>
        <text id="details" x="\(Int(sideMargin))" y="\(Int(height - 10))">\(drawn.isEmpty ? " " : escape(hint))</text>

        """
        svg += legend(samples, profile: profile, coloring: options.coloring, weight: options.weight,
                      withNeutral: drewNeutralFrame)
        if drawn.isEmpty {
            let nothing = options.samples == .wait ? "No lock waits recorded." : "No samples recorded."
            svg += "<text x=\"\(Int(imageWidth / 2))\" y=\"\(Int(headerHeight + frameHeight))\" text-anchor=\"middle\">\(nothing)</text>\n"
        }
        return svg + frames + "</svg>\n"
    }

    /// The name as it fits in `width` pixels: whole, cut with `..`, or empty when under 3 characters fit.
    static func label(_ name: String, width: Double) -> String {
        let fitting = Int(((width - 2 * labelPadding) / charWidth).rounded(.down))
        if fitting < 3 { return "" }
        return name.count <= fitting ? name : String(name.prefix(fitting - 2)) + ".."
    }

    private static func subtitle(_ profile: Profile, total: WaitAmount, options: Options) -> String {
        let words = options.samples.amountWords
        var parts = [profile.hostname, "kernel \(profile.kernel)", "\(Units.duration(profile.durationNs)) recorded",
                     Units.count(total.contentions, words.count), "\(Units.duration(total.waitNs)) \(words.timeDone)",
                     "grouped by \(options.grouping)"]
        if profile.dropped > 0 { parts.append("\(profile.dropped) events lost") }
        return parts.joined(separator: " · ")
    }

    /// Colour swatches for the hues in use, heaviest container first, on the row under the subtitle,
    /// as many as fit.
    private static func legend(_ samples: LockSamples, profile: Profile, coloring: FlameColoring, weight: ExportWeight,
                               withNeutral: Bool) -> String {
        var entries: [(name: String, color: String)]
        switch coloring {
        case .kind:
            let kinds = Set(samples.samples.map { profile.locks[$0.lock].kind })
            entries = LockKind.allCases.filter(kinds.contains).map { ($0.rawValue, Palette.base(hue: Palette.hue(kind: $0))) }
        case .container:
            var weights: [String: UInt64] = [:]
            for sample in samples.samples {
                if let container = sample.place.container {
                    weights[container, default: 0] = weights[container, default: 0].addingSaturated(sample.amount.value(weight))
                }
            }
            let heaviestFirst = weights.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            entries = heaviestFirst.map { (ContainerName.short($0.key), Palette.base(hue: Palette.hue(container: $0.key))) }
        }
        if withNeutral { entries.append(("mixed or unknown", Palette.neutral.hex)) }
        let right = imageWidth - sideMargin
        func more(_ count: Int) -> String { "and \(count) more" }
        var text = "<g id=\"legend\" data-entries=\"\(entries.count)\">"
        var x = sideMargin
        var shown = 0
        for entry in entries {
            let width = 16 + Double(entry.name.count) * charWidth + 14
            let rest = entries.count - shown - 1
            // Room for this swatch, and for "and N more" after it when entries remain.
            let needed = width + (rest > 0 ? Double(more(rest).count) * charWidth : 0)
            if x + needed > right { break }
            text += "<rect x=\"\(fixed(x))\" y=\"54\" width=\"12\" height=\"12\" rx=\"2\" fill=\"\(entry.color)\"/>"
            text += "<text x=\"\(fixed(x + 16))\" y=\"64\">\(escape(entry.name))</text>"
            x += width
            shown += 1
        }
        let hidden = entries[shown...]
        if !hidden.isEmpty {
            // The rest by name on hover, up to a screenful.
            let names = hidden.prefix(maxLegendTooltipNames).map(\.name)
                + (hidden.count > maxLegendTooltipNames ? ["..."] : [])
            text += "<g id=\"legend-more\"><title>\(escape(names.joined(separator: "\n")))</title>"
            text += "<text x=\"\(fixed(x))\" y=\"64\">\(more(hidden.count))</text></g>"
        }
        return text + "</g>\n"
    }

    /// Names of the legend entries that did not fit listed in the tooltip of "and N more".
    static let maxLegendTooltipNames = 40

    private static func color(of node: FlameTree.Node, depth: Int, groupDepth: Int, coloring: FlameColoring) -> Palette.Color {
        if depth == 0 { return Palette.root }
        if depth <= groupDepth { return Palette.groupFrame(name: node.name) }
        switch coloring {
        case .kind:
            guard let kind = node.kind.value else { return Palette.neutralVariant(name: node.name) }
            return Palette.frame(name: node.name, baseHue: Palette.hue(kind: kind))
        case .container:
            guard case .some(.some(let container)) = node.container.value else { return Palette.neutralVariant(name: node.name) }
            return Palette.frame(name: node.name, baseHue: Palette.hue(container: container))
        }
    }

    /// `value` (never negative) with two decimals, without String(format:), which is slow for 100k frames.
    static func fixed(_ value: Double) -> String {
        let hundredths = UInt64(saturating: value * 100)
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }

    private static func percent(_ part: UInt64, of whole: UInt64) -> String {
        String(format: "%.2f%%", whole == 0 ? 0 : Double(part) / Double(whole) * 100)
    }

    static func escape(_ text: String) -> String { XMLText.escape(text) }
}

/// The samples merged into a tree of frames under a root `all`, each node knowing which lock kinds and
/// containers its waits came from.
struct FlameTree {
    struct Node {
        var name: String
        var amount = WaitAmount.zero
        var kind = Uniform<LockKind>.unset
        /// `nil` inside: a container the profile does not know.
        var container = Uniform<String?>.unset
        var children: [String: Int] = [:]
    }

    /// A node placed in the graph: its depth (the root is 0) and its offset from the left in weight units.
    struct PlacedFrame {
        var node: Int
        var depth: Int
        var offset: UInt64
    }

    private(set) var nodes = [Node(name: "all")]
    /// How many levels under the root are the grouping's synthetic frames.
    let groupDepth: Int

    init(_ samples: LockSamples, groupDepth: Int) {
        self.groupDepth = groupDepth
        // Merge first what colours the same, then walk each distinct path once.
        struct ColouredPath: Hashable {
            var key: LockSamples.PathKey
            var kind: LockKind
            var container: String?
        }
        var amounts: [ColouredPath: WaitAmount] = [:]
        for sample in samples.samples {
            let path = ColouredPath(key: samples.pathKey(of: sample), kind: samples.profile.locks[sample.lock].kind,
                                    container: sample.place.container)
            amounts[path, default: .zero] += sample.amount
        }
        for (path, amount) in amounts {
            var current = 0
            record(amount, kind: path.kind, container: path.container, at: current)
            for name in samples.frames(of: path.key) {
                if let child = nodes[current].children[name] {
                    current = child
                } else {
                    nodes.append(Node(name: name))
                    nodes[current].children[name] = nodes.count - 1
                    current = nodes.count - 1
                }
                record(amount, kind: path.kind, container: path.container, at: current)
            }
        }
    }

    private mutating func record(_ amount: WaitAmount, kind: LockKind, container: String?, at node: Int) {
        nodes[node].amount += amount
        nodes[node].kind.merge(kind)
        nodes[node].container.merge(container)
    }

    /// The weight of the `count`-th heaviest frame, and how many frames that heavy fit with the heavier
    /// ones in `count`; (0, all) when there are no more than `count` frames.
    func cut(keeping count: Int, _ weight: ExportWeight) -> (weight: UInt64, ties: Int) {
        guard nodes.count > count, count > 0 else { return (0, .max) }
        let weights = nodes.map { $0.amount.value(weight) }.sorted(by: >)
        let cut = weights[count - 1]
        return (cut, count - weights.prefix { $0 > cut }.count)
    }

    /// Frames in drawing order (parents before children, children by name), leaving out frames lighter
    /// than `minWeight` and what is under them. Of more than `maxFrames`, the heaviest: frames as heavy as
    /// the cut go in drawing order while there is room (no frame is heavier than its parent, so the
    /// frames drawn stay connected). A loop rather than recursion: a stack can be deep.
    func layout(weight: ExportWeight, minWeight: Double, maxFrames: Int = .max) -> [PlacedFrame] {
        var (cut, ties) = self.cut(keeping: maxFrames, weight)
        var placed: [PlacedFrame] = []
        var pending = [PlacedFrame(node: 0, depth: 0, offset: 0)]  // the next frame to place last
        while let frame = pending.popLast() {
            placed.append(frame)
            var children: [PlacedFrame] = []
            var childOffset = frame.offset
            for child in nodes[frame.node].children.sorted(by: { $0.key < $1.key }).map(\.value) {
                let childWeight = nodes[child].amount.value(weight)
                if childWeight > 0 && Double(childWeight) >= minWeight && (childWeight > cut || (childWeight == cut && ties > 0)) {
                    if childWeight == cut { ties -= 1 }
                    children.append(PlacedFrame(node: child, depth: frame.depth + 1, offset: childOffset))
                }
                childOffset = childOffset.addingSaturated(childWeight)
            }
            pending += children.reversed()
        }
        return placed
    }
}

/// A value that is either the same for everything merged into it, or mixed.
enum Uniform<Value: Equatable> {
    case unset
    case one(Value)
    case mixed

    mutating func merge(_ value: Value) {
        switch self {
        case .unset: self = .one(value)
        case .one(let current) where current != value: self = .mixed
        case .one, .mixed: break
        }
    }

    /// The single value, if there is one.
    var value: Value? {
        if case .one(let value) = self { return value }
        return nil
    }
}

/// Deterministic colours: a base hue per lock kind or container, varied per frame name by a hash, so
/// that neighbouring frames differ and the same input always gives the same picture.
enum Palette {
    struct Color: Equatable {
        var hex: String
        /// Grey: the frame's waits mix lock kinds or containers, or come from an unknown container.
        var isNeutral = false
    }

    static let root = Color(hex: "#d4d4d4")
    static let neutral = Color(hex: "#b8b8b8", isNeutral: true)

    static func hue(kind: LockKind) -> Double {
        switch kind {
        case .spinlock: return 4
        case .rwlock: return 20
        case .rwsem: return 34
        case .mutex: return 50
        case .rtmutex: return 268
        case .percpuRwsem: return 182
        case .other: return 100
        }
    }

    static func hue(container: String) -> Double { Double(fnv1a(container) % 360) }

    /// The colour a hue's legend swatch shows.
    static func base(hue: Double) -> String { rgb(hue: hue, saturation: 0.75, lightness: 0.6) }

    static func frame(name: String, baseHue: Double) -> Color {
        let hash = fnv1a(name)
        let hue = baseHue + Double(hash % 17) - 8
        return Color(hex: rgb(hue: hue, saturation: 0.65 + Double((hash >> 8) % 21) / 100,
                              lightness: 0.55 + Double((hash >> 16) % 13) / 100))
    }

    /// Synthetic grouping frames (`[lock] ...`, `[container] ...`): blue-grey, so they read as labels.
    static func groupFrame(name: String) -> Color {
        Color(hex: rgb(hue: 212, saturation: 0.28, lightness: 0.74 + Double(fnv1a(name) % 7) / 100))
    }

    static func neutralVariant(name: String) -> Color {
        Color(hex: rgb(hue: 0, saturation: 0, lightness: 0.68 + Double(fnv1a(name) % 9) / 100), isNeutral: true)
    }

    static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 {
            hash = (hash ^ UInt32(byte)) &* 16_777_619
        }
        return hash
    }

    static func rgb(hue: Double, saturation: Double, lightness: Double) -> String {
        let sector = (hue.truncatingRemainder(dividingBy: 360) + 360).truncatingRemainder(dividingBy: 360) / 60
        let chroma = (1 - abs(2 * lightness - 1)) * saturation
        let second = chroma * (1 - abs(sector.truncatingRemainder(dividingBy: 2) - 1))
        let (r, g, b): (Double, Double, Double)
        switch sector {
        case ..<1: (r, g, b) = (chroma, second, 0)
        case ..<2: (r, g, b) = (second, chroma, 0)
        case ..<3: (r, g, b) = (0, chroma, second)
        case ..<4: (r, g, b) = (0, second, chroma)
        case ..<5: (r, g, b) = (second, 0, chroma)
        default: (r, g, b) = (chroma, 0, second)
        }
        let lift = lightness - chroma / 2
        func byte(_ channel: Double) -> Int { Int(((channel + lift) * 255).rounded()) }
        return String(format: "#%02x%02x%02x", byte(r), byte(g), byte(b))
    }
}
