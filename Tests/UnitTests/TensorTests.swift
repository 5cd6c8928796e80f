import XCTest
import LDKernels
import LDRecords
import LDData
import LDNetworks
import LDJobs

final class TensorTests: XCTestCase {
    func testReshapeReusesBuffer() {
        let t = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(t.count, 6)
        t.reshape([3, 2])
        XCTAssertEqual(t.array, [1, 2, 3, 4, 5, 6])
    }
}
