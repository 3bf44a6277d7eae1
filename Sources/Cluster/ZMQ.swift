import CZeroMQ
import Foundation

/// An error from libzmq (or from this wrapper's own checks), with libzmq's text.
public struct ZMQError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The libzmq errno (0 for errors raised by the wrapper itself).
    public let code: Int32
    /// The operation that failed, e.g. `zmq_bind(tcp://127.0.0.1:*)`.
    public let operation: String
    /// `zmq_strerror` text (or the wrapper's own message).
    public let message: String

    public init(code: Int32, operation: String, message: String) {
        self.code = code
        self.operation = operation
        self.message = message
    }

    /// The current `zmq_errno()` with its `zmq_strerror` text.
    static func last(_ operation: String) -> ZMQError {
        let code = zmq_errno()
        let text = zmq_strerror(code).map { String(cString: $0) } ?? "errno \(code)"
        return ZMQError(code: code, operation: operation, message: text)
    }

    public var description: String { "\(operation): \(message) (errno \(code))" }
}

/// A libzmq context. libzmq contexts are thread-safe, so this wrapper is `Sendable`.
/// The context is terminated when the wrapper is released; close (or release) every socket first.
public final class ZMQContext: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    public init() throws {
        guard let h = zmq_ctx_new() else { throw ZMQError.last("zmq_ctx_new") }
        handle = h
    }

    deinit {
        // zmq_ctx_term blocks until every socket is closed; sockets default to linger 0 here.
        while zmq_ctx_term(handle) != 0 && zmq_errno() == EINTR {}
    }
}

/// A libzmq socket. Not thread-safe: create, use and close it on one thread.
public final class ZMQSocket {
    public enum Kind: Sendable {
        case router
        case dealer
        /// For the ZAP handler (`inproc://zeromq.zap.01`).
        case rep
        /// For reading a socket monitor's events.
        case pair

        var raw: Int32 {
            switch self {
            case .router: return ZMQ_ROUTER
            case .dealer: return ZMQ_DEALER
            case .rep: return ZMQ_REP
            case .pair: return ZMQ_PAIR
            }
        }
    }

    public let kind: Kind
    private var handle: UnsafeMutableRawPointer?
    /// Kept so the context outlives its sockets.
    private let context: ZMQContext

    /// Opens a socket with linger 0 (pending messages are dropped on close). A ROUTER is made
    /// "mandatory": sending to an unknown peer identity fails with EHOSTUNREACH instead of vanishing.
    public init(_ context: ZMQContext, _ kind: Kind) throws {
        guard let h = zmq_socket(context.handle, kind.raw) else { throw ZMQError.last("zmq_socket") }
        self.context = context
        self.kind = kind
        self.handle = h
        try setOption(ZMQ_LINGER, 0)
        if kind == .router {
            try setOption(ZMQ_ROUTER_MANDATORY, 1)
            // A worker that reconnects with its identity takes over the old connection.
            try setOption(ZMQ_ROUTER_HANDOVER, 1)
        }
    }

    deinit { close() }

    private func live(_ operation: String) throws -> UnsafeMutableRawPointer {
        guard let h = handle else { throw ZMQError(code: ENOTSOCK, operation: operation, message: "socket is closed") }
        return h
    }

    /// Sets an integer socket option (`ZMQ_LINGER`, `ZMQ_RCVHWM`, `ZMQ_MAXMSGSIZE` is Int64: use `setOption64`).
    public func setOption(_ option: Int32, _ value: Int32) throws {
        let h = try live("zmq_setsockopt")
        var v = value
        guard zmq_setsockopt(h, option, &v, MemoryLayout<Int32>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    public func setOption64(_ option: Int32, _ value: Int64) throws {
        let h = try live("zmq_setsockopt")
        var v = value
        guard zmq_setsockopt(h, option, &v, MemoryLayout<Int64>.size) == 0 else {
            throw ZMQError.last("zmq_setsockopt(\(option))")
        }
    }

    /// Sets a binary socket option such as `ZMQ_IDENTITY` (routing id).
    public func setOption(_ option: Int32, _ value: Data) throws {
        let h = try live("zmq_setsockopt")
        let rc = value.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, value.count) }
        guard rc == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    /// Sets a string socket option (e.g. a Z85 CURVE key, or `ZMQ_ZAP_DOMAIN`).
    public func setOption(_ option: Int32, _ value: String) throws {
        let h = try live("zmq_setsockopt")
        let bytes = Array(value.utf8)
        let rc = bytes.withUnsafeBytes { zmq_setsockopt(h, option, $0.baseAddress, bytes.count) }
        guard rc == 0 else { throw ZMQError.last("zmq_setsockopt(\(option))") }
    }

    /// Starts a socket monitor publishing `events` on the inproc `endpoint` (read it with a `.pair`
    /// socket connected there; see `MonitorEvent`).
    public func monitor(_ endpoint: String, events: Int32) throws {
        let h = try live("zmq_socket_monitor")
        guard zmq_socket_monitor(h, endpoint, events) == 0 else { throw ZMQError.last("zmq_socket_monitor(\(endpoint))") }
    }

    /// Waits up to `timeout` seconds (negative: forever) until any of `sockets` has a message or
    /// any of `fds` is readable; returns the readiness of each, sockets first.
    public static func poll(_ sockets: [ZMQSocket], fds: [Int32] = [], timeout: Double) throws -> [Bool] {
        var items: [zmq_pollitem_t] = []
        for s in sockets { items.append(zmq_pollitem_t(socket: try s.live("zmq_poll"), fd: 0, events: Int16(ZMQ_POLLIN), revents: 0)) }
        for fd in fds { items.append(zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)) }
        let ms: Int = timeout < 0 ? -1 : Int((timeout * 1000).rounded(.up))
        while true {
            let rc = zmq_poll(&items, Int32(items.count), ms)
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                throw ZMQError.last("zmq_poll")
            }
            return items.map { $0.revents & Int16(ZMQ_POLLIN) != 0 }
        }
    }

    /// Linger in milliseconds (-1: forever, 0: drop pending messages on close).
    public func setLinger(_ milliseconds: Int32) throws { try setOption(ZMQ_LINGER, milliseconds) }

    /// The largest inbound message libzmq accepts; bigger ones drop the connection (-1: no limit).
    public func setMaxMessageSize(_ bytes: Int64) throws { try setOption64(ZMQ_MAXMSGSIZE, bytes) }

    public func bind(_ endpoint: String) throws {
        let h = try live("zmq_bind")
        guard zmq_bind(h, endpoint) == 0 else { throw ZMQError.last("zmq_bind(\(endpoint))") }
    }

    public func connect(_ endpoint: String) throws {
        let h = try live("zmq_connect")
        guard zmq_connect(h, endpoint) == 0 else { throw ZMQError.last("zmq_connect(\(endpoint))") }
    }

    /// `ZMQ_LAST_ENDPOINT`: the endpoint actually bound, e.g. `tcp://127.0.0.1:41234` after binding `:*`.
    public func lastEndpoint() throws -> String {
        let h = try live("zmq_getsockopt")
        var buffer = [CChar](repeating: 0, count: 512)
        var size = buffer.count
        let rc = buffer.withUnsafeMutableBytes { zmq_getsockopt(h, ZMQ_LAST_ENDPOINT, $0.baseAddress, &size) }
        guard rc == 0 else { throw ZMQError.last("zmq_getsockopt(ZMQ_LAST_ENDPOINT)") }
        let bytes = buffer.prefix(max(0, min(size, buffer.count))).prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Waits up to `timeout` seconds (negative: forever) for `events`; true when they are ready.
    private func poll(_ events: Int16, timeout: Double) throws -> Bool {
        let h = try live("zmq_poll")
        var item = zmq_pollitem_t(socket: h, fd: 0, events: events, revents: 0)
        let ms: Int = timeout < 0 ? -1 : Int((timeout * 1000).rounded(.up))
        while true {
            let rc = zmq_poll(&item, 1, ms)
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                throw ZMQError.last("zmq_poll")
            }
            return rc > 0 && (item.revents & events) != 0
        }
    }

    /// Waits up to `timeout` seconds until this socket has a message or `fd` (e.g. a pipe another
    /// thread writes to) is readable. Returns which of the two is ready.
    public func waitReadable(orFileDescriptor fd: Int32, timeout: Double) throws -> (socket: Bool, fd: Bool) {
        let h = try live("zmq_poll")
        var items = [zmq_pollitem_t(socket: h, fd: 0, events: Int16(ZMQ_POLLIN), revents: 0),
                     zmq_pollitem_t(socket: nil, fd: fd, events: Int16(ZMQ_POLLIN), revents: 0)]
        let ms: Int = timeout < 0 ? -1 : Int((timeout * 1000).rounded(.up))
        while true {
            let rc = zmq_poll(&items, 2, ms)
            if rc < 0 {
                if zmq_errno() == EINTR { continue }
                throw ZMQError.last("zmq_poll")
            }
            return (items[0].revents & Int16(ZMQ_POLLIN) != 0, items[1].revents & Int16(ZMQ_POLLIN) != 0)
        }
    }

    /// Sends all frames as one multipart message. Returns false when the socket could not take the
    /// message within `timeout` seconds (nothing was sent). Throws on libzmq errors (for a ROUTER,
    /// EHOSTUNREACH when the first frame names no connected peer).
    @discardableResult
    public func send(_ frames: [Data], timeout: Double = -1) throws -> Bool {
        let h = try live("zmq_send")
        guard !frames.isEmpty else { throw ZMQError(code: EINVAL, operation: "zmq_send", message: "no frames") }
        guard try poll(Int16(ZMQ_POLLOUT), timeout: timeout) else { return false }
        for (i, frame) in frames.enumerated() {
            let flags = ZMQ_DONTWAIT | (i < frames.count - 1 ? ZMQ_SNDMORE : 0)
            while true {
                let rc = frame.withUnsafeBytes { zmq_send(h, $0.baseAddress, frame.count, flags) }
                if rc >= 0 { break }
                let err = zmq_errno()
                if err == EINTR { continue }
                // After the first frame of a multipart message, libzmq accepts the rest atomically;
                // EAGAIN on frame 0 means the pipe filled between poll and send.
                if err == EAGAIN && i == 0 { return false }
                throw ZMQError.last("zmq_send")
            }
        }
        return true
    }

    /// Receives one multipart message, or nil when none arrived within `timeout` seconds
    /// (negative: wait forever).
    public func receive(timeout: Double = -1) throws -> [Data]? {
        let h = try live("zmq_msg_recv")
        guard try poll(Int16(ZMQ_POLLIN), timeout: timeout) else { return nil }
        var frames: [Data] = []
        while true {
            var msg = zmq_msg_t()
            guard zmq_msg_init(&msg) == 0 else { throw ZMQError.last("zmq_msg_init") }
            defer { zmq_msg_close(&msg) }
            let flags = frames.isEmpty ? ZMQ_DONTWAIT : 0
            var rc: Int32
            repeat { rc = zmq_msg_recv(&msg, h, flags) } while rc < 0 && zmq_errno() == EINTR
            if rc < 0 {
                if frames.isEmpty && zmq_errno() == EAGAIN { return nil }
                throw ZMQError.last("zmq_msg_recv")
            }
            let size = zmq_msg_size(&msg)
            if size > 0, let base = zmq_msg_data(&msg) {
                frames.append(Data(bytes: base, count: size))
            } else {
                frames.append(Data())
            }
            if zmq_msg_more(&msg) == 0 { return frames }
        }
    }

    /// Closes the socket (idempotent). Pending outbound messages are kept for `linger` ms.
    public func close() {
        if let h = handle {
            zmq_close(h)
            handle = nil
        }
    }
}
