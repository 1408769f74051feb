"""Writes pipelines/data/stdlib_docs.tsv: topic<TAB>first paragraph of a CPython standard-library docstring.

    python pipelines/data/make_stdlib_docs.py pipelines/data/stdlib_docs.tsv     # Python 3.11.7 made the shipped file

Topics are groups of standard-library packages (gui = tkinter, async = asyncio, web = http + urllib, …). Each
function, class and method defined in those packages (tests left out) gives its own docstring's first paragraph,
cut at 40 words; docstrings under 5 words and exact duplicates are dropped; at most 400 per topic (seeded).
"""
import collections
import importlib
import inspect
import pkgutil
import random
import sys

TOPICS = {"gui": ["tkinter"], "async": ["asyncio"], "email": ["email"], "xml": ["xml"], "logging": ["logging"],
          "testing": ["unittest"], "web": ["http", "urllib"]}
CAP = 400


def modules(package_name):
    package = importlib.import_module(package_name)
    found = [package]
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        if ".test" in info.name or "__main__" in info.name:
            continue
        try:
            found.append(importlib.import_module(info.name))
        except Exception:  # optional parts missing on this Python build (e.g. no display for tkinter extras)
            pass
    return sorted(found, key=lambda m: m.__name__)


def docstrings(module):
    for _, obj in sorted(vars(module).items()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        objects = [obj]
        if inspect.isclass(obj):
            objects += [v for _, v in sorted(vars(obj).items()) if inspect.isfunction(v)]
        for o in objects:
            doc = o.__doc__ if isinstance(getattr(o, "__doc__", None), str) else None  # own docstring, not inherited
            if doc:
                yield inspect.cleandoc(doc)


def main(path):
    rows, seen = [], set()
    for topic, packages in TOPICS.items():
        texts = []
        for doc in (d for p in packages for m in modules(p) for d in docstrings(m)):
            words = " ".join(doc.split("\n\n")[0].split()).split()
            text = " ".join(words[:40])
            if len(words) >= 5 and text not in seen:
                seen.add(text)
                texts.append(text)
        random.Random(0).shuffle(texts)
        rows += [(topic, text) for text in texts[:CAP]]
    random.Random(1).shuffle(rows)
    with open(path, "w") as f:
        f.writelines(f"{topic}\t{text}\n" for topic, text in rows)
    print(sys.version.split()[0], len(rows), collections.Counter(topic for topic, _ in rows))


if __name__ == "__main__":
    main(sys.argv[1])
