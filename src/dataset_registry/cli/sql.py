"""`registry sql`: a query on the catalog alone.

It needs no manifests, store or plugins, so it does not open a Registry (whose imports,
pydantic's manifest models and the engine's, cost twice DuckDB's own): the catalog's
path, the query, the output. See README's "Provenance in SQL".
"""

from __future__ import annotations

import argparse
import json
import os

from ..errors import BadInputError


def sql(args: argparse.Namespace) -> int:
    from ..catalog import Catalog
    from ..config import locations
    from .display import table, write_csv

    if args.timeout < 0:
        raise BadInputError(f"--timeout {args.timeout:g}: give seconds >= 0 (0: no limit)")
    if args.storage_option or os.environ.get("DATASET_REGISTRY_STORAGE_OPTIONS"):
        from ..core.remote import env_options, parse_options

        # what opening the Registry would refuse, refused here too (though unused)
        parse_options(args.storage_option or [])
        env_options()
    where = locations(args.root, manifests=args.manifests, store=args.store,
                      catalog=args.catalog)
    columns, rows = Catalog(where.catalog).query(args.query, timeout=args.timeout)
    if args.format == "json" or args.json:
        print(json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str,
                         indent=1))
    elif args.format == "csv":
        write_csv(columns, rows)
    else:
        table(columns, rows)
    return 0
