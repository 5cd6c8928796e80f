import XCTest

final class HelpTests: XCTestCase {
    func testPlaceholder() { XCTAssertTrue(true) }
}
