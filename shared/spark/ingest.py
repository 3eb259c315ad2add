"""Sluice's dataset scan on Spark, for uploads larger than one function instance can read.

It does what Sluice's own scan (shared/src/dataset/scan/) does, with the same rules
(shared/src/dataset/validation/rules.rs), spread over a Spark cluster:

    spark-submit ingest.py --input PATH --contract CONTRACT.json --output DIR

PATH is a CSV file or a folder of part files (read in name order, as one file); DIR
receives ``scan.json`` (the scan's result, the same fields as Sluice's ScanOutput) and,
when every rule held, the snapshot as ``DIR/data.parquet/part-*.parquet``. Paths are
anything the cluster's Hadoop file systems read (local, abfss://, dbfs:/, /Volumes/...).

How it stays equal to the single-machine scan:
- identity is the SHA-256 of the raw bytes, computed in one sequential pass on the
  driver's JVM (no bytes cross into Python);
- Spark reads lines in splits; a record is a run of lines that closes its quotes (the
  same rule Sluice cuts blocks by), so the first pass counts each split's lines and
  quotes, and the second knows every split's first line number and whether it starts
  inside a quoted field. Records that cross a split are stitched on the driver;
- the checks are a line-for-line port of the rules, with the same messages, counts
  and first ten examples in file order;
- the profile is computed by Spark SQL from the typed values with the same
  definitions: histogram bins are the power-of-two width the column's range asks for,
  which Sluice's scan also ends with whatever its blocks were.
Differences, all documented in docs/design.md: a quoted field's line breaks come back
as LF; distinct counts stay exact past 100,000 values (Sluice estimates them there and
says so); top values stay exact past 10,000 distinct values; on Spark before 4.0, a
line's encoding is judged by U+FFFD (4.0's is_valid_utf8 is exact).

Only the standard library and pyspark are used, so the script runs as it is on local
Spark, Azure ML serverless Spark and Databricks.
"""

import argparse
import csv
import json
import math
import re
import sys

from pyspark import StorageLevel
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

MAX_EXAMPLES = 10
MAX_BINS = 64
TOP_VALUES = 20
DISTINCT_CAP = 100_000
# The order rules are reported in (shared/src/dataset/validation/mod.rs, `Rule`).
RULES = [
    "empty_file",
    "unreadable",
    "encoding",
    "column_count",
    "header",
    "missing_column",
    "type",
    "range",
    "allowed_values",
    "label_values",
    "max_null_fraction",
    "min_rows",
]
INTEGER = re.compile(r"[+-]?[0-9]+\Z")
FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
ASCII_SPACE = " \t\n\r\x0c"
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}


def rust_float(x):
    """A float as Rust's `Display` writes it: shortest round-trip digits, no exponent."""
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == int(x) and abs(x) < 1e16:
        return str(int(x))
    digits = repr(x)
    if "e" not in digits:
        return digits
    mantissa, exp = digits.split("e")
    sign = "-" if mantissa.startswith("-") else ""
    mantissa = mantissa.lstrip("-")
    whole, _, frac = mantissa.partition(".")
    digits, point = whole + frac, len(whole) + int(exp)
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def clip(value):
    """Examples are kept short, as Sluice keeps them: 120 bytes of UTF-8, then an ellipsis."""
    raw = value.encode("utf-8", "surrogatepass")
    if len(raw) <= 120:
        return value
    return raw[:120].decode("utf-8", "ignore") + "\u2026"


def ascii_lower(s):
    return s.translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz"))


def exp_for_range(lo, hi):
    """The histogram's bin width (log2) for values in [lo, hi] (profile.rs, `exp_for_range`)."""
    span = hi - lo
    if span > 0:
        exp = math.floor(math.log2(span / (MAX_BINS - 1)))
    elif lo == 0:
        exp = -1000
    else:
        exp = math.floor(math.log2(abs(lo) / 1e15))

    def fits(e):
        inv = 2.0**-e
        return (
            abs(lo * inv) <= 1e15
            and abs(hi * inv) <= 1e15
            and math.floor(hi * inv) - math.floor(lo * inv) < MAX_BINS
        )

    while not fits(exp):
        exp += 1
    return exp


class Violations:
    """Counts per (column, rule), the first message, and the first examples by line."""

    def __init__(self):
        self.found = {}

    def add(self, column, rule, message, line, value):
        v = self.found.get((column, rule))
        if v is None:
            v = self.found[(column, rule)] = {"message": message, "first": line, "count": 0, "examples": []}
        elif line < v["first"]:
            v["message"], v["first"] = message, line
        v["count"] += 1
        if len(v["examples"]) < MAX_EXAMPLES:
            v["examples"].append({"row": line, "value": clip(value)})

    def add_summary(self, column, rule, message, count):
        self.found[(column, rule)] = {"message": message, "first": 0, "count": count, "examples": []}

    def merge(self, other):
        for key, theirs in other.found.items():
            mine = self.found.get(key)
            if mine is None:
                self.found[key] = theirs
                continue
            if theirs["first"] < mine["first"]:
                mine["message"], mine["first"] = theirs["message"], theirs["first"]
            mine["count"] += theirs["count"]
            examples = sorted(mine["examples"] + theirs["examples"], key=lambda e: e["row"])
            mine["examples"] = examples[:MAX_EXAMPLES]

    def has(self, rule):
        return any(r == rule for _, r in self.found)

    def result(self):
        def order(key):
            column, rule = key
            return (column is not None, column or "", RULES.index(rule))

        violations = [
            {
                "column": column,
                "rule": rule,
                "message": v["message"],
                "count": v["count"],
                "examples": v["examples"],
            }
            for (column, rule), v in sorted(self.found.items(), key=lambda kv: order(kv[0]))
        ]
        return {"passed": not violations, "violations": violations}


class Rules:
    """The contract's rules (validation/rules.rs), one value, row and file at a time."""

    def __init__(self, contract):
        self.contract = contract
        csv_format = contract.get("csv", {})
        self.delimiter = csv_format.get("delimiter", ",")
        self.quote = csv_format.get("quote", '"')
        self.has_header = csv_format.get("has_header", True)
        self.trim = csv_format.get("trim", True)
        self.null_tokens = set(csv_format.get("null_tokens", []))
        self.comment = csv_format.get("comment")
        self.columns = contract["columns"]
        self.names = [c["name"] for c in self.columns]
        self.label = contract.get("label")
        self.label_index = self.names.index(self.label["column"]) if self.label and self.label["column"] in self.names else None
        self.allowed = [None if c.get("allowed") is None else set(c["allowed"]) for c in self.columns]
        self.allowed_count = [None if c.get("allowed") is None else len(dict.fromkeys(c["allowed"])) for c in self.columns]

    def check_value(self, i, text, line, violations):
        """(value, ok): the parsed value (None for null or unparsable) and whether it passed."""
        spec = self.columns[i]
        column = spec["name"]
        if self.trim:
            text = text.strip(ASCII_SPACE)
        if text == "" or text in self.null_tokens:
            return None, True
        ok = True
        if self.label_index == i:
            text = self.label.get("aliases", {}).get(text, text)
            if text not in self.label["values"]:
                violations.add(column, "label_values", "labels must be one of: " + ", ".join(self.label["values"]), line, text)
                ok = False
        kind = spec["type"]
        if kind == "boolean":
            lowered = ascii_lower(text)
            if lowered in TRUE:
                return True, ok
            if lowered in FALSE:
                return False, ok
            violations.add(column, "type", "values must be true/false", line, text)
            return None, False
        if kind == "string":
            if self.allowed[i] is not None and text not in self.allowed[i]:
                n = self.allowed_count[i]
                violations.add(column, "allowed_values", f"values must be one of the {n} allowed values", line, text)
                ok = False
            return text, ok
        if kind == "integer":
            value = int(text) if INTEGER.match(text) else None
            if value is not None and not -(2**63) <= value < 2**63:
                value = None
            if value is None:
                violations.add(column, "type", "values must be integers", line, text)
                return None, False
            x = float(value)
        else:
            value = float(text) if FLOAT.match(text) else None
            if value is None or not math.isfinite(value):
                violations.add(column, "type", "values must be finite numbers", line, text)
                return None, False
            x = value
        lo, hi = spec.get("min"), spec.get("max")
        if (lo is not None and x < lo) or (hi is not None and x > hi):
            lo_text = rust_float(float("-inf") if lo is None else float(lo))
            hi_text = rust_float(float("inf") if hi is None else float(hi))
            violations.add(column, "range", f"values must lie in [{lo_text}, {hi_text}]", line, text)
            ok = False
        return value, ok

    def check_header(self, fields, line, violations):
        found = [f.strip(ASCII_SPACE) for f in fields]
        if found != self.names:
            violations.add(None, "header", "the header must be " + ",".join(self.names), line, ",".join(found))

    def delimiter_hint(self, fields):
        raw = "".join(fields)
        expected = len(self.columns)
        for d in [",", ";", "\t", "|"]:
            if d != self.delimiter and raw.count(d) + 1 == expected:
                return f" (the row splits into {expected} fields on {d!r}: is the delimiter {self.delimiter!r} right?)"
        return ""

    def check_file(self, size, rows, nulls, violations):
        if size == 0:
            violations.add_summary(None, "empty_file", "the file is empty", 0)
        for spec, n in zip(self.columns, nulls):
            limit = spec.get("max_null_fraction")
            if limit is not None and rows > 0 and n / rows > limit:
                message = f"at most {limit * 100:.2f}% nulls allowed, found {n / rows * 100:.2f}%"
                violations.add_summary(spec["name"], "max_null_fraction", message, n)
        least = max(self.contract.get("min_rows", 0), 1)
        if rows < least and size > 0 and not violations.has("unreadable"):
            violations.add_summary(None, "min_rows", f"at least {least} data rows required, found {rows}", rows)


class Scanner:
    """Checks records in file order; collects typed rows for records with every field."""

    def __init__(self, rules):
        self.rules = rules
        self.violations = Violations()
        self.rows = 0
        self.typed = []

    def record(self, line, text, valid, is_header):
        """One record: its first line, its text (lines joined by LF), whether its bytes were
        UTF-8. False for what is not a record (a blank or comment line)."""
        rules = self.rules
        if rules.comment is not None and text.startswith(rules.comment):
            return False
        parsed = list(csv.reader([text], delimiter=rules.delimiter, quotechar=rules.quote, strict=False))
        if not parsed or parsed[0] == []:
            return False
        fields = parsed[0]
        if is_header:
            rules.check_header(fields, line, self.violations)
            return True
        self.rows += 1
        if len(fields) != len(rules.columns):
            hint = rules.delimiter_hint(fields)
            message = f"expected {len(rules.columns)} fields per row, found {len(fields)}{hint}"
            self.violations.add(None, "column_count", message, line, rules.delimiter.join(fields))
            return
        values = [line]
        for i, field in enumerate(fields):
            if not valid and "\ufffd" in field:
                self.violations.add(rules.names[i], "encoding", "values must be UTF-8 text", line, field)
                values.append(None)
                continue
            value, _ = rules.check_value(i, field, line, self.violations)
            values.append(value)
        self.typed.append(tuple(values))
        return True


def read_contract(spark, path):
    text = spark.sparkContext.wholeTextFiles(path).first()[1]
    return json.loads(text)


def input_files(spark, path):
    """The input's files in the order they are one file: itself, or a folder's parts by name."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    fs = hpath.getFileSystem(conf)
    status = fs.getFileStatus(hpath)
    if not status.isDirectory():
        return [status.getPath().toString()]
    names = [
        s.getPath().toString()
        for s in fs.listStatus(hpath)
        if s.isFile() and not s.getPath().getName().startswith(("_", "."))
    ]
    return sorted(names)


def sha256_and_size(spark, files):
    """SHA-256 of the files' bytes as one stream, read on the driver's JVM (py4j copies
    byte arrays into Python, so the bytes are read and hashed by one JVM call a file)."""
    jvm = spark._jvm
    conf = spark._jsc.hadoopConfiguration()
    digest = jvm.java.security.MessageDigest.getInstance("SHA-256")
    size = 0
    for name in files:
        hpath = jvm.org.apache.hadoop.fs.Path(name)
        stream = jvm.java.security.DigestInputStream(hpath.getFileSystem(conf).open(hpath), digest)
        try:
            size += stream.transferTo(jvm.java.io.OutputStream.nullOutputStream())
        finally:
            stream.close()
    return bytes(digest.digest()).hex(), size


def write_text(spark, path, text):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(spark._jsc.hadoopConfiguration()).create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def split_records(rows, start_line, inside, quote, strip_bom):
    """Cuts one split's lines into records. Yields ("head", lines) for the lines that end a
    record begun in an earlier split, ("record", line, text, valid) for each whole record,
    and ("tail", lines) for a record still open at the split's end."""
    line = start_line
    pending = []
    head = inside
    for value, valid in rows:
        if strip_bom and line == start_line and value.startswith("\ufeff"):
            value = value[1:]
        pending.append((line, value, valid))
        if value.count(quote) % 2:
            inside = not inside
        line += 1
        if not inside:
            if head:
                yield ("head", pending)
                head = False
            else:
                yield ("record", pending[0][0], "\n".join(v for _, v, _ in pending), all(ok for _, _, ok in pending))
            pending = []
    if pending:
        yield ("head_open" if head else "tail", pending)


def scan_partition(rules_json, starts):
    """The second pass over one Spark partition: whole records are checked here."""

    def run(rows):
        rules = Rules(json.loads(rules_json))
        scanner = Scanner(rules)
        fragments = []
        current, buffered = None, []

        def flush():
            if current is None:
                return
            start = starts[current]
            first_record = start["block_start"] == 0
            for piece in split_records(buffered, start["line"], start["inside"], rules.quote, start["block_start"] == 0):
                if piece[0] == "record":
                    _, line, text, valid = piece
                    if scanner.record(line, text, valid, first_record and rules.has_header):
                        first_record = False
                else:
                    fragments.append((start["order"], piece[0], piece[1], first_record))

        for row in rows:
            key = (row.file_path, row.file_block_start)
            if key != current:
                flush()
                current, buffered = key, []
            buffered.append((row.value, row.valid))
        flush()
        for values in scanner.typed:
            yield ("row", values)
        yield ("report", (scanner.rows, scanner.violations.found, fragments))

    return run


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--contract", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    spark = SparkSession.builder.appName("sluice-ingest").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    contract = read_contract(spark, args.contract)
    rules = Rules(contract)
    files = input_files(spark, args.input)
    sha256, size = sha256_and_size(spark, files)

    lines = spark.read.text(files).select(
        "_metadata.file_path",
        "_metadata.file_block_start",
        "value",
        (F.is_valid_utf8("value") if hasattr(F, "is_valid_utf8") else ~F.col("value").contains("\ufffd")).alias("valid"),
    )
    # Pass 1: each split's lines and quote parity, to number lines and know where quoted
    # fields run across splits.
    quote = rules.quote
    stats = (
        lines.groupBy("file_path", "file_block_start")
        .agg(
            F.count(F.lit(1)).alias("lines"),
            F.sum(F.length("value") - F.length(F.regexp_replace("value", re.escape(quote), ""))).alias("quotes"),
        )
        .collect()
    )
    order = {name: i for i, name in enumerate(files)}
    # Spark reports paths as it resolved them; match them to the listing by their end.
    def file_rank(path):
        for name, i in order.items():
            if path == name or path.endswith(name.split(":", 1)[-1]):
                return i
        return len(order)

    stats.sort(key=lambda s: (file_rank(s.file_path), s.file_block_start))
    starts, line, inside, previous_file = {}, 1, False, None
    for n, s in enumerate(stats):
        if s.file_path != previous_file:
            inside, previous_file = False, s.file_path
        starts[(s.file_path, s.file_block_start)] = {
            "line": line,
            "inside": inside,
            "block_start": s.file_block_start,
            "order": n,
        }
        line += s.lines
        if (s.quotes or 0) % 2:
            inside = not inside

    # Pass 2: check every record; keep typed values for the profile and the snapshot.
    checked = lines.rdd.mapPartitions(scan_partition(json.dumps(contract), starts))
    # On disk only: a split's checked rows, pickled, can outgrow a small driver's heap
    # as one memory block (local Spark with 2 GB ran out on 128 MB splits).
    checked.persist(StorageLevel.DISK_ONLY)
    reports = checked.filter(lambda x: x[0] == "report").map(lambda x: x[1]).collect()
    violations = Violations()
    rows = 0
    fragments = []
    for count, found, pieces in reports:
        rows += count
        part = Violations()
        part.found = found
        violations.merge(part)
        fragments.extend(pieces)

    # Records that cross splits, stitched in split order and checked here.
    stitcher = Scanner(rules)
    fragments.sort(key=lambda f: (f[0], ["head", "head_open", "tail"].index(f[1])))
    pending, pending_header = [], False
    split_of = {v["order"]: k for k, v in starts.items()}

    def finish_pending():
        nonlocal pending
        if pending:
            text = "\n".join(v for _, v, _ in pending)
            stitcher.record(pending[0][0], text, all(ok for _, _, ok in pending), pending_header and rules.has_header)
        pending = []

    last_file = None
    for order_n, kind, piece, first_record in fragments:
        file_path = split_of[order_n][0]
        if file_path != last_file:
            finish_pending()
            last_file = file_path
        if kind in ("head", "head_open"):
            pending.extend(piece)
            if kind == "head":
                finish_pending()
        else:
            finish_pending()
            pending, pending_header = list(piece), first_record
    finish_pending()
    violations.merge(stitcher.violations)
    rows += stitcher.rows

    # The profile, from the typed values of every record that had all its fields.
    kinds = {"integer": T.LongType(), "float": T.DoubleType(), "string": T.StringType(), "boolean": T.BooleanType()}
    schema = T.StructType(
        [T.StructField("__line", T.LongType(), False)]
        + [T.StructField(c["name"], kinds[c["type"]], True) for c in rules.columns]
    )
    typed_rdd = checked.filter(lambda x: x[0] == "row").map(lambda x: x[1])
    typed = spark.createDataFrame(typed_rdd, schema)
    if stitcher.typed:
        typed = typed.union(spark.createDataFrame(stitcher.typed, schema))
    typed.persist(StorageLevel.MEMORY_AND_DISK)
    profile, nulls = column_profiles(typed, rules.columns)
    rules.check_file(size, rows, nulls, violations)
    validation = violations.result()

    data_path = args.output.rstrip("/") + "/data.parquet"
    written = False
    if validation["passed"]:
        typed.orderBy("__line").drop("__line").write.mode("overwrite").parquet(data_path)
        written = True
    result = {
        "format": "csv",
        "sha256": sha256,
        "bytes": size,
        "rows": rows,
        "profile": profile,
        "validation": validation,
        "parquet_written": written,
        "engine": {"name": "spark", "version": spark.version, "files": len(files)},
    }
    write_text(spark, args.output.rstrip("/") + "/scan.json", json.dumps(result))
    spark.stop()


def column_profiles(typed, columns):
    """Each column's profile (profile.rs, `ColumnProfile`), and its null count."""
    count = typed.count()
    aggregates = []
    for c in columns:
        name = c["name"]
        aggregates.append(F.count(F.col(name)).alias(f"n:{name}"))
        aggregates.append(F.countDistinct(F.col(name)).alias(f"d:{name}"))
        if c["type"] in ("integer", "float"):
            x = F.col(name).cast("double")
            aggregates += [
                F.min(x).alias(f"min:{name}"),
                F.max(x).alias(f"max:{name}"),
                F.avg(x).alias(f"mean:{name}"),
                F.stddev_samp(x).alias(f"std:{name}"),
            ]
    totals = typed.agg(*aggregates).first().asDict() if columns else {}
    profiles, nulls = [], []
    for c in columns:
        name, kind = c["name"], c["type"]
        present = totals[f"n:{name}"]
        distinct = totals[f"d:{name}"]
        profile = {
            "name": name,
            "type": kind,
            "count": count,
            "nulls": count - present,
            "distinct": distinct,
            "distinct_exact": distinct <= DISTINCT_CAP,
        }
        if kind in ("integer", "float") and present > 0:
            lo, hi = totals[f"min:{name}"], totals[f"max:{name}"]
            exp = exp_for_range(lo, hi)
            width = 2.0**exp
            bins = (
                typed.where(F.col(name).isNotNull())
                .select(F.floor(F.col(name).cast("double") * F.lit(2.0**-exp)).alias("bin"))
                .groupBy("bin")
                .count()
                .orderBy("bin")
                .collect()
            )
            std = totals[f"std:{name}"]
            profile["numeric"] = {
                "min": lo,
                "max": hi,
                "mean": totals[f"mean:{name}"],
                "std": 0.0 if present < 2 or std is None else std,
                "histogram": [{"lo": b["bin"] * width, "hi": (b["bin"] + 1) * width, "count": b["count"]} for b in bins],
            }
        elif kind in ("string", "boolean"):
            values = F.col(name) if kind == "string" else F.when(F.col(name), "true").otherwise("false")
            top = (
                typed.where(F.col(name).isNotNull())
                .select(values.alias("value"))
                .groupBy("value")
                .count()
                .orderBy(F.desc("count"), F.asc("value"))
                .limit(TOP_VALUES)
                .collect()
            )
            profile["top_values"] = [{"value": t["value"], "count": t["count"]} for t in top]
        profiles.append(profile)
        nulls.append(count - present)
    return profiles, nulls


if __name__ == "__main__":
    main(sys.argv[1:])
