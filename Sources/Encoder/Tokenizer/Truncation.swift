/// HF `truncation` (stride 0; overflowing tokens are dropped).
struct Truncation: Sendable {
    enum Strategy: String, Sendable { case longestFirst = "LongestFirst", onlyFirst = "OnlyFirst", onlySecond = "OnlySecond" }
    enum Direction: String, Sendable { case right = "Right", left = "Left" }

    var maxLength: Int
    var strategy: Strategy = .longestFirst
    var direction: Direction = .right

    init(maxLength: Int) { self.maxLength = maxLength }

    init(_ node: TokenizerJSON) throws {
        maxLength = try node.int("max_length")
        if let s = try node.optionalString("strategy") {
            guard let v = Strategy(rawValue: s) else {
                throw node.unsupported("strategy", s, supported: ["LongestFirst", "OnlyFirst", "OnlySecond"])
            }
            strategy = v
        }
        if let d = try node.optionalString("direction") {
            guard let v = Direction(rawValue: d) else { throw node.unsupported("direction", d, supported: ["Right", "Left"]) }
            direction = v
        }
    }

    /// Truncates so that the two encodings hold at most `maxLength` tokens together (the
    /// post-processor's special tokens already subtracted). For `longest_first` this follows HF:
    /// the shorter sequence is kept whole if the longer one can absorb the cut; otherwise both
    /// are cut to half, the longer one (the second on a tie) keeping the odd token.
    func apply(_ first: inout Encoding, _ second: inout Encoding?) throws {
        if maxLength == 0 {
            first.keep(0, direction)
            second?.keep(0, direction)
            return
        }
        let total = first.count + (second?.count ?? 0)
        guard total > maxLength else { return }
        let excess = total - maxLength
        switch strategy {
        case .longestFirst:
            guard var other = second else {
                first.keep(maxLength, direction)
                return
            }
            var n1 = first.count, n2 = other.count
            let swapped = n1 > n2
            if swapped { swap(&n1, &n2) }
            n2 = n1 > maxLength ? n1 : max(n1, maxLength - n1)
            if n1 + n2 > maxLength {
                n1 = maxLength / 2
                n2 = n1 + maxLength % 2
            }
            if swapped { swap(&n1, &n2) }
            first.keep(n1, direction)
            other.keep(n2, direction)
            second = other
        case .onlyFirst, .onlySecond:
            let target = strategy == .onlyFirst ? first.count : second?.count
            guard let n = target else {
                throw TokenizerError.encodingFailed(reason: "truncation only_second needs a second sequence")
            }
            guard n > excess else {
                throw TokenizerError.encodingFailed(reason: "sequence to truncate is too short for max_length")
            }
            if strategy == .onlyFirst { first.keep(n - excess, direction) } else { second?.keep(n - excess, direction) }
        }
    }
}

extension Encoding {
    /// Keeps at most `n` tokens: the first ones (`.right`) or the last ones (`.left`).
    mutating func keep(_ n: Int, _ direction: Truncation.Direction) {
        guard count > n else { return }
        switch direction {
        case .right:
            ids.removeSubrange(n...); typeIds.removeSubrange(n...); tokens.removeSubrange(n...)
        case .left:
            let drop = count - n
            ids.removeFirst(drop); typeIds.removeFirst(drop); tokens.removeFirst(drop)
        }
    }
}
