// The study report (issue 9): statistics (Statistics.swift), inline-SVG charts (SVG.swift) and the
// self-contained HTML page. The journal → tables step lives in the Sweep-facing `StudyReport`.
