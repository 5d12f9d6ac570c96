"""``painterly styles``: the built-in styles, by name, with their provenance."""
from __future__ import annotations

import json

from .. import styles


def add_parsers(sub) -> None:
    p = sub.add_parser("styles", help="list the built-in styles (use them with --style NAME)",
                       description="The paintings shipped with painterly, usable by name in "
                       "'fast' and 'style' (--style NAME): public-domain works, reduced to "
                       "512 px.")
    p.add_argument("--json", action="store_true", help="print the provenance records as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    records = styles.describe()
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    width = max(map(len, records))
    for name, rec in records.items():
        print(f"{name:<{width}}  {rec['title']}, {rec['painter']}, {rec['year']} ({rec['licence']})")
    return 0
