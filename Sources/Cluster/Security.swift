import CZeroMQ
import Foundation
import Synchronization

// CURVE authentication and encryption (ZeroMQ's CurveZMQ) with a ZAP allowlist of worker public
// keys, socket monitors that turn a failed handshake into a clear error instead of a silent retry,
// and the rule that a non-loopback endpoint needs CURVE (or an explicit `--insecure`).

/// A security problem, said plainly: which file, key or peer, and what to do.
public struct SecurityError: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A CURVE key pair in Z85 text (40 characters each), as libzmq takes them.
public struct CurveKeyPair: Equatable, Sendable {
    public let publicKey: String
    public let secretKey: String?

    public init(publicKey: String, secretKey: String?) throws {
        guard Self.isZ85Key(publicKey) else { throw SecurityError("not a Z85 CURVE public key (40 characters): \(publicKey)") }
        if let secretKey {
            guard Self.isZ85Key(secretKey) else { throw SecurityError("not a Z85 CURVE secret key (40 characters)") }
            var derived = [CChar](repeating: 0, count: 41)
            guard zmq_curve_public(&derived, secretKey) == 0,
                  text(derived) == publicKey else {
                throw SecurityError("the public key does not belong to the secret key")
            }
        }
        self.publicKey = publicKey
        self.secretKey = secretKey
    }

    /// A fresh key pair from libzmq (libsodium's randomness).
    public static func generate() throws -> CurveKeyPair {
        guard curveAvailable else { throw SecurityError("this libzmq was built without CURVE (libsodium); install Debian's libzmq5") }
        var pub = [CChar](repeating: 0, count: 41), sec = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&pub, &sec) == 0 else { throw ZMQError.last("zmq_curve_keypair") }
        return try CurveKeyPair(publicKey: text(pub), secretKey: text(sec))
    }

    /// Whether libzmq supports CURVE.
    public static var curveAvailable: Bool { zmq_has("curve") != 0 }

    static func isZ85Key(_ s: String) -> Bool {
        let alphabet = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")
        return s.count == 40 && s.allSatisfy { alphabet.contains($0) }
    }

    /// The Z85 text of a 32-byte binary key (as ZAP requests carry it).
    public static func z85(_ bytes: Data) -> String? {
        guard bytes.count == 32 else { return nil }
        var out = [CChar](repeating: 0, count: 41)
        let ok = bytes.withUnsafeBytes { raw in zmq_z85_encode(&out, raw.bindMemory(to: UInt8.self).baseAddress, 32) != nil }
        return ok ? text(out) : nil
    }

    // MARK: files

    /// `public-key = "…"` and (for a secret file) `secret-key = "…"` lines; `#` comments.
    public func fileText(secret: Bool) -> String {
        var s = secret ? "# AdapterMix CURVE key pair — keep this file private (mode 600); give others the .pub file\n"
                       : "# AdapterMix CURVE public key\n"
        s += "public-key = \"\(publicKey)\"\n"
        if secret, let secretKey { s += "secret-key = \"\(secretKey)\"\n" }
        return s
    }

    /// Writes `NAME.key` (mode 600) and `NAME.pub` into `dir`; refuses to overwrite an existing key.
    public func write(to dir: URL, name: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let key = dir.appendingPathComponent("\(name).key"), pub = dir.appendingPathComponent("\(name).pub")
        for f in [key, pub] where fm.fileExists(atPath: f.path) {
            throw SecurityError("\(f.path) exists — not overwriting a key; remove it first or choose another name")
        }
        guard fm.createFile(atPath: key.path, contents: Data(fileText(secret: true).utf8), attributes: [.posixPermissions: 0o600]) else {
            throw SecurityError("\(key.path): cannot write")
        }
        try fileText(secret: false).write(to: pub, atomically: true, encoding: .utf8)
    }

    /// Reads a `.key` (pair) or `.pub` (public only) file, naming the file in every error.
    public static func read(_ url: URL, needSecret: Bool) throws -> CurveKeyPair {
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            throw SecurityError("\(url.path): cannot read the key file")
        }
        var values: [String: String] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty, !line.hasPrefix("#"), let eq = line.firstIndex(of: "=") else { continue }
            let k = line[..<eq].trimmingCharacters(in: .whitespaces)
            let v = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            values[k] = v
        }
        guard let pub = values["public-key"] else { throw SecurityError("\(url.path): no public-key line — not an AdapterMix key file") }
        if needSecret && values["secret-key"] == nil {
            throw SecurityError("\(url.path): no secret-key line — give the .key file (the key pair), not the .pub")
        }
        do {
            return try CurveKeyPair(publicKey: pub, secretKey: needSecret ? values["secret-key"] : nil)
        } catch let e as SecurityError {
            throw SecurityError("\(url.path): \(e.description)")
        }
    }
}

/// The coordinator's side: its key pair and the folder of authorized worker public keys.
public struct CurveServer: Sendable {
    public let keys: CurveKeyPair
    /// `*.pub` files of the workers allowed in; re-read on every handshake, so adding a worker's
    /// key needs no restart.
    public let authorizedDir: URL

    /// `dir/coordinator.key` and `dir/authorized/*.pub` (the layout `adaptermix keys generate` writes).
    public init(directory dir: URL) throws {
        guard CurveKeyPair.curveAvailable else { throw SecurityError("this libzmq was built without CURVE (libsodium)") }
        keys = try CurveKeyPair.read(dir.appendingPathComponent("coordinator.key"), needSecret: true)
        authorizedDir = dir.appendingPathComponent("authorized")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: authorizedDir.path, isDirectory: &isDir), isDir.boolValue else {
            throw SecurityError("\(authorizedDir.path): missing — put each allowed worker's .pub file there ('adaptermix keys generate' makes it)")
        }
    }

    /// Public key → file name of every authorized worker (unreadable files are reported, not fatal).
    public func authorized(log: (String) -> Void = { _ in }) -> [String: String] {
        var out: [String: String] = [:]
        let files = (try? FileManager.default.contentsOfDirectory(atPath: authorizedDir.path)) ?? []
        for name in files.sorted() where name.hasSuffix(".pub") {
            do {
                out[try CurveKeyPair.read(authorizedDir.appendingPathComponent(name), needSecret: false).publicKey] = name
            } catch {
                log("ignoring \(name) in \(authorizedDir.path): \(error)")
            }
        }
        return out
    }

    func apply(to socket: ZMQSocket) throws {
        try socket.setOption(ZMQ_CURVE_SERVER, 1)
        try socket.setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey!)
        try socket.setOption(ZMQ_ZAP_DOMAIN, "adaptermix")
    }
}

/// A worker's side: its key pair and the coordinator's public key.
public struct CurveClient: Sendable {
    public let keys: CurveKeyPair
    public let serverKey: String

    public init(keyFile: URL, serverKeyFile: URL) throws {
        guard CurveKeyPair.curveAvailable else { throw SecurityError("this libzmq was built without CURVE (libsodium)") }
        keys = try CurveKeyPair.read(keyFile, needSecret: true)
        serverKey = try CurveKeyPair.read(serverKeyFile, needSecret: false).publicKey
    }

    func apply(to socket: ZMQSocket) throws {
        try socket.setOption(ZMQ_CURVE_SERVERKEY, serverKey)
        try socket.setOption(ZMQ_CURVE_PUBLICKEY, keys.publicKey)
        try socket.setOption(ZMQ_CURVE_SECRETKEY, keys.secretKey!)
    }
}

/// The ZAP handler (ZeroMQ RFC 27) on its own thread: libzmq asks it about every CURVE handshake
/// on the context; it answers 200 for a listed public key and 400 otherwise, logging refusals.
final class ZAPHandler: Sendable {
    private let stopped = StopFlag()
    private let done = DispatchSemaphore(value: 0)

    /// Binds `inproc://zeromq.zap.01` on `context` (before any CURVE socket binds) and serves on a new thread.
    init(context: ZMQContext, server: CurveServer, log: @escaping @Sendable (String) -> Void) throws {
        let socket = try ZMQSocket(context, .rep)
        try socket.bind("inproc://zeromq.zap.01")
        let box = UncheckedSocket(socket)
        let stopped = self.stopped, done = self.done
        let thread = Thread {
            let socket = box.socket
            defer { socket.close(); done.signal() }
            while !stopped.isSet {
                guard let frames = try? socket.receive(timeout: 0.2) else { continue }
                // version, request id, domain, address, routing id, mechanism, credentials…
                let requestID = frames.count > 1 ? frames[1] : Data()
                var status = "400", text = "malformed ZAP request"
                if frames.count >= 7, String(decoding: frames[0], as: UTF8.self) == "1.0" {
                    let address = String(decoding: frames[3], as: UTF8.self)
                    let mechanism = String(decoding: frames[5], as: UTF8.self)
                    if mechanism == "CURVE", let key = CurveKeyPair.z85(frames[6]) {
                        if let file = server.authorized(log: log)[key] {
                            status = "200"; text = "OK (\(file))"
                        } else {
                            text = "public key \(key) is not in \(server.authorizedDir.path)"
                            log("refused a CURVE handshake from \(address): \(text) — to admit that worker, copy its .pub file there")
                        }
                    } else {
                        text = "mechanism \(mechanism) is not allowed: this coordinator requires CURVE"
                        log("refused a \(mechanism) handshake from \(address): \(text)")
                    }
                }
                let reply = [Data("1.0".utf8), requestID, Data(status.utf8), Data(text.utf8), Data(), Data()]
                _ = try? socket.send(reply, timeout: 1)
            }
        }
        thread.name = "adaptermix-zap"
        thread.start()
    }

    /// Stops the thread and closes its socket (call before the context goes away).
    func stop() {
        stopped.set()
        done.wait()
    }
}

/// Hands a socket to the thread that will own it from then on.
final class UncheckedSocket: @unchecked Sendable {
    let socket: ZMQSocket
    init(_ socket: ZMQSocket) { self.socket = socket }
}

/// One socket-monitor event: what happened, its value (an errno, a ZAP status or a protocol error
/// code) and the peer endpoint.
public struct MonitorEvent: Equatable, Sendable {
    public let event: Int32
    public let value: UInt32
    public let endpoint: String

    /// The two frames a monitor sends: 2 bytes event + 4 bytes value (native order), then the endpoint.
    init?(_ frames: [Data]) {
        guard frames.count == 2, frames[0].count == 6 else { return nil }
        let b = [UInt8](frames[0])
        event = Int32(UInt16(b[0]) | UInt16(b[1]) << 8)
        value = UInt32(b[2]) | UInt32(b[3]) << 8 | UInt32(b[4]) << 16 | UInt32(b[5]) << 24
        endpoint = String(decoding: frames[1], as: UTF8.self)
    }

    static let handshakeFailures: Int32 = ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH

    /// What a failed handshake means, for a log line or an error; `server` when seen by the side
    /// that authenticates (the coordinator).
    public func explanation(server: Bool = false) -> String? {
        switch event {
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            return server ? "the worker's key is not authorized (ZAP status \(value))" : "the peer refused our credentials (ZAP status \(value))"
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            if value == UInt32(bitPattern: ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
                return "the two sides use different security mechanisms (one CURVE, the other plaintext)"
            }
            return "handshake protocol error 0x\(String(value, radix: 16))"
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            return "the handshake failed (errno \(value): \(String(cString: strerror(Int32(value)))))"
        default:
            return nil
        }
    }
}

/// A NUL-terminated C buffer as text.
func text(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A stop flag shared with a thread.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}

/// Whether a ZeroMQ endpoint only listens on this machine: `ipc://`, `inproc://`, or `tcp://` on
/// 127.0.0.0/8, `localhost` or `[::1]`. `tcp://*:…` and `0.0.0.0` listen on every interface.
public func isLoopbackEndpoint(_ endpoint: String) -> Bool {
    if endpoint.hasPrefix("ipc://") || endpoint.hasPrefix("inproc://") { return true }
    guard endpoint.hasPrefix("tcp://") else { return false }
    var host = String(endpoint.dropFirst(6))
    if let semicolon = host.lastIndex(of: ";") { host = String(host[host.index(after: semicolon)...]) }
    if host.hasPrefix("[") {
        return host.hasPrefix("[::1]")
    }
    if let colon = host.lastIndex(of: ":") { host = String(host[..<colon]) }
    if host == "localhost" { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    guard parts.count == 4, parts.allSatisfy({ UInt8($0) != nil }) else { return false }
    return parts[0] == "127"
}
