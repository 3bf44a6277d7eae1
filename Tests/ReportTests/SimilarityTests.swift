import Report
import XCTest

final class SimilarityTests: XCTestCase {
    /// Hand-made 2-d embeddings: domain a's centroid (1, 0), b's (1, 1)/…, c's (0, 1), d's (−1, 0).
    func testCentroidCosineWorkedByHand() {
        let m = DomainSimilarity.centroidCosine([
            [[1, 0], [1, 0]],          // centroid (1, 0)
            [[1, 0], [0, 1]],          // centroid (0.5, 0.5): 45° from both axes
            [[0, 2], [0, 1]],          // centroid (0, 1.5)
            [[-3, 0]],                 // centroid (−3, 0)
        ])
        let s = 0.5.squareRoot()
        let expected: [[Double]] = [[1, s, 0, -1], [s, 1, s, -s], [0, s, 1, 0], [-1, -s, 0, 1]]
        for i in 0..<4 {
            for j in 0..<4 {
                XCTAssertEqual(m[i][j], expected[i][j], accuracy: 1e-12, "\(i),\(j)")
                XCTAssertEqual(m[i][j], m[j][i], "symmetric")
            }
            XCTAssertEqual(m[i][i], 1, "unit diagonal")
        }
        // No embeddings: NaN, not a crash.
        XCTAssertTrue(DomainSimilarity.centroidCosine([[], [[1, 0]]])[0][1].isNaN)
    }

    /// On a hand-made matrix: the target first, then the most similar others (ties by index).
    func testSelectionBySimilarityPicksTheExpectedAdapters() {
        let s: [[Double]] = [
            [1, 0.2, 0.9, 0.5, 0.5],
            [0.2, 1, 0.1, 0.3, 0.4],
            [0.9, 0.1, 1, 0.6, 0.7],
            [0.5, 0.3, 0.6, 1, 0.8],
            [0.5, 0.4, 0.7, 0.8, 1],
        ]
        XCTAssertEqual(DomainSimilarity.selectBySimilarity(s, target: 0, l: 1), [0])
        XCTAssertEqual(DomainSimilarity.selectBySimilarity(s, target: 0, l: 2), [0, 2])
        XCTAssertEqual(DomainSimilarity.selectBySimilarity(s, target: 0, l: 4), [0, 2, 3, 4])  // 3 and 4 tie at 0.5: index order
        XCTAssertEqual(DomainSimilarity.selectBySimilarity(s, target: 1, l: 3), [1, 4, 3])
        XCTAssertEqual(DomainSimilarity.selectBySimilarity(s, target: 4, l: 5), [4, 3, 2, 0, 1])
    }
}
