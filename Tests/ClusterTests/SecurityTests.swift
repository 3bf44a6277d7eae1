import Foundation
@testable import Cluster
import XCTest

final class SecurityTests: XCTestCase {
    func testLoopbackEndpoints() {
        for e in ["tcp://127.0.0.1:5555", "tcp://127.0.0.2:*", "tcp://127.255.1.9:1", "tcp://localhost:5", "tcp://[::1]:5",
                  "ipc:///tmp/x", "inproc://a", "tcp://127.0.0.3:0;127.0.0.2:5555"] {
            XCTAssertTrue(isLoopbackEndpoint(e), e)
        }
        for e in ["tcp://*:5555", "tcp://0.0.0.0:5555", "tcp://10.0.0.1:5555", "tcp://192.168.1.2:1", "tcp://head-node:5555",
                  "tcp://[::]:5", "tcp://128.0.0.1:5", "tcp://127.0.0:5", "udp://127.0.0.1:5"] {
            XCTAssertFalse(isLoopbackEndpoint(e), e)
        }
    }

    func testKeyFilesRoundTripAndRefuseMistakes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("amx-keys-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pair = try CurveKeyPair.generate()
        XCTAssertEqual(pair.publicKey.count, 40)
        try pair.write(to: dir, name: "w")
        let attributes = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("w.key").path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600, "the secret key file is private")
        XCTAssertEqual(try CurveKeyPair.read(dir.appendingPathComponent("w.key"), needSecret: true), pair)
        XCTAssertEqual(try CurveKeyPair.read(dir.appendingPathComponent("w.pub"), needSecret: false).publicKey, pair.publicKey)
        XCTAssertThrowsError(try pair.write(to: dir, name: "w")) { XCTAssertTrue("\($0)".contains("not overwriting"), "\($0)") }
        // A .pub where a key pair is needed, a secret that does not match its public key.
        XCTAssertThrowsError(try CurveKeyPair.read(dir.appendingPathComponent("w.pub"), needSecret: true)) {
            XCTAssertTrue("\($0)".contains("w.pub") && "\($0)".contains("secret-key"), "\($0)")
        }
        let other = try CurveKeyPair.generate()
        let mixed = dir.appendingPathComponent("mixed.key")
        try "public-key = \"\(pair.publicKey)\"\nsecret-key = \"\(other.secretKey!)\"\n".write(to: mixed, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try CurveKeyPair.read(mixed, needSecret: true)) { XCTAssertTrue("\($0)".contains("does not belong"), "\($0)") }
        // Z85 of the binary key as ZAP carries it.
        let raw = Data((0..<32).map { UInt8($0) })
        XCTAssertEqual(CurveKeyPair.z85(raw)?.count, 40)
        XCTAssertNil(CurveKeyPair.z85(Data([1, 2, 3])))
    }
}
