import Datasets
import XCTest

final class ExampleTypeTests: XCTestCase {
    func testErrorNamesFileAndLine() {
        XCTAssertEqual("\(DatasetError(file: "a.csv", line: 3, reason: "missing column \"text\"", hint: "check the header"))",
                       "a.csv:3: missing column \"text\" — check the header")
    }
}
