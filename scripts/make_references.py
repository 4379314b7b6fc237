"""Regenerates search_spaces/references/*.json from hwnas.references.

Run: python scripts/make_references.py   (a test checks the files agree)
"""

from hwnas import netspec, references


def main():
  out = references.references_dir()
  out.mkdir(parents=True, exist_ok=True)
  for name, build in references.BUILDERS.items():
    netspec.save(build(), out / f"{name}.json")
    print("wrote", out / f"{name}.json")


if __name__ == "__main__":
  main()
