"""Storage: the files a capture run writes (sample CSV, Parquet tables, raw archive, event log).

Every writer is crash-safe in the same sense: a hard kill loses at most the rows since the last
flush, and never leaves a file that a reader cannot parse up to its last complete row.
"""
