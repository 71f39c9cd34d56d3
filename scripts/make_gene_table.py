"""Build the shipped human gene identifier table from Bioconductor's org.Hs.eg.db.

    apt-get install -y r-bioc-org.hs.eg.db
    python scripts/make_gene_table.py --out src/exprssl/datasets/data/gene_ids_human.tsv.gz

Source: the SQLite file of Debian's r-bioc-org.hs.eg.db (Bioconductor org.Hs.eg.db,
Artistic-2.0), read with Python's sqlite3 (no R needed). Output: a gzipped TSV with one row per
(Entrez gene id, kind, name), kind one of ``symbol`` (the current HGNC/NCBI symbol), ``alias``
(aliases and previous symbols) and ``ensembl`` (Ensembl gene ids), sorted, so that reruns on the
same package version give identical content. The metadata (source versions and dates) is printed
for the LICENSE file beside the table.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import sqlite3
from pathlib import Path

import pandas as pd

DEFAULT_DB = "/usr/lib/R/site-library/org.Hs.eg.db/extdata/org.Hs.eg.sqlite"

QUERY = """
SELECT g.gene_id AS gene_id, 'symbol' AS kind, i.symbol AS name
  FROM genes g JOIN gene_info i ON g._id = i._id
UNION
SELECT g.gene_id, 'alias', a.alias_symbol
  FROM genes g JOIN alias a ON g._id = a._id
UNION
SELECT g.gene_id, 'ensembl', e.ensembl_id
  FROM genes g JOIN ensembl e ON g._id = e._id
"""


def build(db: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        table = pd.read_sql_query(QUERY, con)
        meta = pd.read_sql_query("SELECT name, value FROM metadata", con)
    table = table.dropna().astype(str)
    symbols = table[table["kind"] == "symbol"]
    # an alias equal to the gene's own symbol says nothing
    own = table.merge(symbols, on=["gene_id", "name"], suffixes=("", "_s"))
    table = table[
        ~table.set_index(["gene_id", "name"]).index.isin(
            own.loc[own["kind"] == "alias"].set_index(["gene_id", "name"]).index
        )
        | (table["kind"] != "alias")
    ]
    table = table.sort_values(["kind", "name", "gene_id"], key=lambda c: c.astype(str)).reset_index(
        drop=True
    )
    return table, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--db", type=Path, default=None, help="org.Hs.eg.sqlite (default: the Debian path)"
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    db = args.db or Path(next(iter(glob.glob(DEFAULT_DB) or [DEFAULT_DB])))
    table, meta = build(db)
    buf = io.StringIO()
    table.to_csv(buf, sep="\t", index=False, lineterminator="\n")
    tmp = args.out.with_name(args.out.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz:
        gz.write(buf.getvalue().encode())
    tmp.replace(args.out)
    counts = table["kind"].value_counts().to_dict()
    print(f"{args.out}: {len(table)} rows {counts}")
    print(meta.to_string(index=False))


if __name__ == "__main__":
    main()
