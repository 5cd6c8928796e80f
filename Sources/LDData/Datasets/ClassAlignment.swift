import LDKernels

/// An explicit pairing of a data set's class names with a model's classes (`--class-map FILE`): one pair per
/// line, `DATA_CLASS MODEL_CLASS`, separated by white space, where MODEL_CLASS is one of the model's class
/// names or its index (ImageNet's wnids to torchvision's indices: `n01440764 0`). `#` starts a comment.
public struct ClassMap: Equatable, Sendable {
    /// Data class name -> model class name or index, as written.
    public var pairs: [String: String]
    public let source: String

    public init(pairs: [String: String], source: String = "--class-map") {
        self.pairs = pairs
        self.source = source
    }

    /// Reads a class-map file; malformed or duplicate lines are errors naming the line.
    public init(path: String) throws {
        guard let lines = try Files.lines(path) else { throw LDError("--class-map \(path): no such file") }
        var pairs: [String: String] = [:]
        for (n, raw) in lines.enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            if fields.isEmpty { continue }
            guard fields.count == 2 else {
                throw LDError("--class-map \(path): line \(n + 1) has \(fields.count) fields, expected DATA_CLASS MODEL_CLASS")
            }
            guard pairs[fields[0]] == nil else { throw LDError("--class-map \(path): data class '\(fields[0])' is paired twice (line \(n + 1))") }
            pairs[fields[0]] = fields[1]
        }
        guard !pairs.isEmpty else { throw LDError("--class-map \(path): no pairs") }
        self.init(pairs: pairs, source: "--class-map \(path)")
    }
}

extension Dataset {
    /// Whether `names` are ld's placeholder for unnamed classes ("0", "1", ...): nothing to compare.
    public static func arePlaceholders(_ names: [String]) -> Bool {
        names.enumerated().allSatisfy { $0.element == String($0.offset) }
    }

    /// This set with its labels in the class order of `reference` (a model's class names, or another set's),
    /// so that class k means the same thing on both sides; the most common silent failure of the seeds' code
    /// (a teacher whose class order differs from the data's scores near zero) becomes a remap or an error:
    ///
    /// - the same names in the same order, or unnamed classes (placeholders) on either side with the same
    ///   count: unchanged, no note;
    /// - names all among the reference's, in another order or a subset of them: labels remapped by name, and
    ///   a note for stderr saying so;
    /// - a name the reference does not have: an error naming the first one and suggesting `--class-map`;
    /// - with `map`: each data class paired as the map says (every data class must be in it).
    ///
    /// `role` names the set (`--data fmnist:test`), `referenceName` the other side (`the model teacher.ldm`).
    public func aligned(to reference: [String], referenceName: String, role: String,
                        map: ClassMap? = nil) throws -> (data: Dataset, note: String?) {
        let k = reference.count
        var target = [Int](repeating: -1, count: classes)
        if let map {
            let index = Dictionary(reference.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
            for (c, name) in classNames.enumerated() {
                guard let to = map.pairs[name] else {
                    throw LDError("\(map.source) pairs no model class with \(role)'s class '\(name)' (class \(c))")
                }
                if let i = index[to] { target[c] = i } else if let i = Int(to), (0..<k).contains(i) { target[c] = i } else {
                    throw LDError("\(map.source) pairs '\(name)' with '\(to)', which is neither a class name of \(referenceName) nor an index 0...\(k - 1)")
                }
            }
            return (remapped(target, names: reference), "\(role): classes paired with \(referenceName)'s by \(map.source)")
        }
        if classNames == reference { return (self, nil) }
        if Dataset.arePlaceholders(classNames) || Dataset.arePlaceholders(reference) {
            guard classes == k else {
                throw LDError("\(role) has \(classes) classes, \(referenceName) has \(k)")
            }
            return (self, nil)
        }
        let index = Dictionary(reference.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { a, _ in a })
        for (c, name) in classNames.enumerated() {
            guard let i = index[name] else {
                let theirs = c < k ? " (its class \(c) is '\(reference[c])')" : ""
                throw LDError("\(role)'s class \(c) is '\(name)', which \(referenceName) does not have\(theirs): the class names differ; pair them with --class-map FILE")
            }
            target[c] = i
        }
        let subset = classes < k ? "\(classes) of \(referenceName)'s \(k) classes" : "\(referenceName)'s classes"
        guard let moved = (0..<classes).first(where: { target[$0] != $0 }) else {
            return (remapped(target, names: reference), "\(role) holds \(subset), by name")
        }
        let note = "\(role) lists \(subset) in another order: remapped by name ('\(classNames[moved])' is class \(moved) there, \(target[moved]) here)"
        return (remapped(target, names: reference), note)
    }

    /// Labels sent through `target` (old class -> new class) into the `names` class list.
    private func remapped(_ target: [Int], names: [String]) -> Dataset {
        var d = self
        d.labels = labels.map { Int32(target[Int($0)]) }
        d.classes = names.count
        d.classNames = names
        return d
    }
}
