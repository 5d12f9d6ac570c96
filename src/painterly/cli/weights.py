"""``painterly weights``: list, locate, verify or download network weights."""
from __future__ import annotations

from .. import weights as W
from ..errors import ConfigError


def add_parsers(sub) -> None:
    p = sub.add_parser("weights", help="list, locate, verify or download network weights")
    p.add_argument("action", choices=("list", "path", "verify", "download"))
    p.add_argument("names", nargs="*", help="registry names (default: all for list/verify)")
    p.set_defaults(func=run)


def run(args) -> int:
    names = args.names or (list(W.REGISTRY) if args.action in ("list", "verify") else [])
    if not names:
        raise ConfigError(f"'weights {args.action}' needs a name", "see 'painterly weights list'")
    packaged = [W.PACKAGED[n] for n in names if n in W.PACKAGED]
    specs = [W.get_spec(n) for n in names if n not in W.PACKAGED]
    if args.action == "list":
        _list(specs, packaged if args.names else list(W.PACKAGED.values()))
    elif args.action == "path":
        for spec in specs:
            print(W.resolve(spec, offline=True))
        for model in packaged:
            print(model.path)
    elif args.action == "download":
        for spec in specs:
            print(W.resolve(spec))
        for model in packaged:
            print(model.path)  # shipped inside the package: nothing to download
    else:
        _verify(specs)
    return 0


def _list(specs, packaged) -> None:
    for spec in specs:
        local = W.find_local(spec)
        where = str(local) if local else f"not downloaded ({spec.url})"
        print(f"{spec.name:18} {spec.arch:6} {spec.convention:11} {where}\n"
              f"{'':18} {spec.description}; licence: {spec.licence}")
    for model in packaged:
        print(f"{model.name:18} {'':6} {'painterly':11} {model.path}\n"
              f"{'':18} {model.description}; licence: MIT (painterly's own)")


def _verify(specs) -> None:
    for spec in specs:
        local = W.find_local(spec)
        if local is None:
            print(f"{spec.name}: not found locally")
            continue
        print(f"{spec.name}: OK {local} sha256 {W.verify(local, spec)}")
