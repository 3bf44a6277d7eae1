/// Domain similarity as the study's Section 3.1 measures it: the cosine similarity of the domains'
/// sentence-embedding centroids.
public enum DomainSimilarity {
    /// The centroid (mean vector) of each domain's embeddings, then the domain × domain cosine
    /// matrix of the centroids: symmetric, 1 on the diagonal (NaN for a domain with no embeddings
    /// or a zero centroid).
    public static func centroidCosine(_ embeddings: [[[Float]]]) -> [[Double]] {
        let centroids: [[Double]] = embeddings.map { vectors in
            guard let dim = vectors.first?.count else { return [] }
            var c = [Double](repeating: 0, count: dim)
            for v in vectors { for i in 0..<dim { c[i] += Double(v[i]) } }
            return c.map { $0 / Double(vectors.count) }
        }
        let n = centroids.count
        var out = [[Double]](repeating: [Double](repeating: .nan, count: n), count: n)
        for i in 0..<n {
            for j in i..<n {
                let a = centroids[i], b = centroids[j]
                guard !a.isEmpty, a.count == b.count else { continue }
                var dot = 0.0, na = 0.0, nb = 0.0
                for t in a.indices { dot += a[t] * b[t]; na += a[t] * a[t]; nb += b[t] * b[t] }
                guard na > 0, nb > 0 else { continue }
                let c = i == j ? 1 : max(-1, min(1, dot / (na.squareRoot() * nb.squareRoot())))
                out[i][j] = c
                out[j][i] = c
            }
        }
        return out
    }

    /// The target first, then the l − 1 others by their value in the target's row, largest or
    /// smallest first (ties in index order): AdapterSoup's selection (similarity, largest first) and
    /// greedy FSD mixing anchored on the target (FSD, smallest or largest first).
    public static func select(_ matrix: [[Double]], target: Int, l: Int, largestFirst: Bool) -> [Int] {
        let others = matrix.indices.filter { $0 != target }.sorted { a, b in
            let x = matrix[target][a], y = matrix[target][b]
            return x != y ? (largestFirst ? x > y : x < y) : a < b
        }
        return [target] + others.prefix(max(0, l - 1))
    }

    /// AdapterSoup's selection: the target's own adapter first, then the l − 1 other domains whose
    /// centroids are most similar to the target's (ties in index order).
    public static func selectBySimilarity(_ similarity: [[Double]], target: Int, l: Int) -> [Int] {
        select(similarity, target: target, l: l, largestFirst: true)
    }
}
