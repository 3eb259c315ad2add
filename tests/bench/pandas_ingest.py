"""The peer in `sluice bench`: pandas reads the same CSV and computes what Sluice's
profile holds (describe, nunique, null counts). Prints one JSON line."""
import json
import resource
import sys
import time

import pandas as pd

path = sys.argv[1]
started = time.perf_counter()
df = pd.read_csv(path, na_values=["NA"], keep_default_na=False)
describe = df.describe(include="all")
nunique = df.nunique()
nulls = df.isnull().sum()
seconds = time.perf_counter() - started
assert len(describe.columns) == len(df.columns) and len(nunique) == len(nulls)
print(json.dumps({
    "seconds": seconds,
    "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    "rows": len(df),
}))
