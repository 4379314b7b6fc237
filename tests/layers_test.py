"""The import graph of hwnas/ goes one way: no back-edges, no cycles.

Every module under hwnas/ is parsed (not imported) and each of its imports
of hwnas code is collected, wherever it is written (module top, inside a
function, or `importlib.import_module("hwnas....")` with a literal name).
An import whose target is computed (`import_module(f"hwnas.{name}")`,
`__import__(name)`) cannot be checked, so none is allowed: a lazy
re-export would climb layers unseen. Each module belongs to one layer
(docs/architecture.md); a module may import only from its own layer or
below, and no set of modules may import each other in a circle.
"""

import ast
import functools
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hwnas"

# Layers, lowest first. A key names a module or a package (and everything
# in it), relative to hwnas/; the longest matching key decides. A new
# top-level module or package must be added here (and to
# docs/architecture.md), in the lowest layer whose modules it needs.
LAYERS = (
    # Foundations: import nothing of hwnas but each other. Helpers that every
    # layer's runs share go here: the optimiser and schedule builder both
    # the supernet and standalone training use ('optim'), workdir locking
    # and checksums ('workdir'), log filtering ('chatter'), progress lines
    # when stdout is not a terminal ('progress'), the checks of every input
    # at the edge ('validate'), JAX's persistent compilation cache
    # ('compile_cache') and the compiled executables kept beside it
    # ('aot_cache').
    ("errors", "resources", "configs", "optim", "workdir", "chatter",
     "mesh", "progress", "validate", "compile_cache", "aot_cache"),
    # Values and I/O that know nothing of architectures or models.
    # 'energy': the row-stationary energy model (needs only netspec).
    ("netspec", "space", "counting", "references", "data", "tflite",
     "edgetpu", "energy"),
    # Architectures and the standalone models they become. The package root
    # (hwnas/__init__.py) re-exports the light core (arch, space, ...), so
    # it sits here: `from hwnas import __version__` is fine from above.
    ("arch", "models", "", "hand_design"),
    # What uses architectures: latency tables, the search, the supernet.
    ("latency", "search", "supernet"),
    # Training one standalone network (its workdir and checksummed
    # checkpoints: 'train_workdir'), what builds on it (the supernet's rank
    # check against standalone training), and export.
    ("train_standalone", "train_workdir", "rank_check", "rerank", "export"),
    # The pipeline stages the quickstart and the CLI share.
    ("pipeline", "quickstart"),
    # The command line.
    ("cli", "__main__"),
)
LAYER_NAMES = ("errors/resources/configs", "netspec/space/...", "arch/models",
               "latency/search/supernet", "train/export", "pipeline", "cli")

# Import cycles that exist on this branch and are being removed on others.
# Each entry is the exact set of modules of one cycle; the test fails if an
# entry is no longer a cycle (then delete it) so that this list only
# shrinks. After the fixes are merged it must be empty: `KNOWN_CYCLES = ()`.
KNOWN_CYCLES = ()


def _module_name(path: pathlib.Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def _modules() -> dict[str, pathlib.Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))
          if "_data" not in p.parts}


def _resolve(name: str, modules) -> str | None:
  """The longest prefix of `name` that is a module of ours."""
  parts = name.split(".")
  while parts:
    candidate = ".".join(parts)
    if candidate in modules:
      return candidate
    parts.pop()
  return None


def _is_import_call(node: ast.AST) -> bool:
  """`importlib.import_module(x)`, `import_module(x)` or `__import__(x)`."""
  return (isinstance(node, ast.Call) and bool(node.args)
          and getattr(node.func, "attr", getattr(node.func, "id", None))
          in ("import_module", "__import__"))


def _literal(arg: ast.AST) -> bool:
  return isinstance(arg, ast.Constant) and isinstance(arg.value, str)


def _computed_imports(path: pathlib.Path) -> list[int]:
  """Line numbers of the imports in `path` whose target is computed."""
  tree = ast.parse(path.read_text(), filename=str(path))
  return [node.lineno for node in ast.walk(tree)
          if _is_import_call(node) and not _literal(node.args[0])]


def _imports(module: str, path: pathlib.Path, modules) -> set[str]:
  """The hwnas modules that `module` imports, anywhere in its source."""
  tree = ast.parse(path.read_text(), filename=str(path))
  is_package = path.name == "__init__.py"
  names = []
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      names += [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        pkg = module.split(".")
        pkg = pkg[:len(pkg) - node.level + (1 if is_package else 0)]
        base = ".".join(pkg + ([base] if base else []))
      for a in node.names:
        # `from hwnas.x import y` imports module hwnas.x.y if there is one,
        # else the name y of hwnas.x.
        names.append(f"{base}.{a.name}" if f"{base}.{a.name}" in modules
                     else base)
    elif _is_import_call(node) and _literal(node.args[0]):
      names.append(node.args[0].value)
  out = set()
  for name in names:
    if name == "hwnas" or name.startswith("hwnas."):
      target = _resolve(name, modules)
      if target and target != module:
        out.add(target)
  return out


def _layer(module: str) -> int | None:
  rel = module[len("hwnas."):] if module != "hwnas" else ""
  best, best_len = None, -1
  for i, keys in enumerate(LAYERS):
    for key in keys:
      if key == "" and rel == "":
        return i
      if key and (rel == key or rel.startswith(key + ".")) and (
          len(key) > best_len):
        best, best_len = i, len(key)
  return best


@functools.cache
def _graph():
  modules = _modules()
  return {m: _imports(m, p, modules) for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
  """Strongly connected components with more than one module (Tarjan's
  algorithm, iterative), i.e. the import cycles."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []
  counter = 0
  for root in sorted(graph):
    if root in index:
      continue
    work = [(root, iter(sorted(graph[root])))]
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    while work:
      node, children = work[-1]
      child = next(children, None)
      if child is not None:
        if child not in index:
          index[child] = low[child] = counter
          counter += 1
          stack.append(child)
          on_stack.add(child)
          work.append((child, iter(sorted(graph[child]))))
        elif child in on_stack:
          low[node] = min(low[node], index[child])
        continue
      work.pop()
      if work:
        low[work[-1][0]] = min(low[work[-1][0]], low[node])
      if low[node] == index[node]:
        component = set()
        while True:
          m = stack.pop()
          on_stack.discard(m)
          component.add(m)
          if m == node:
            break
        if len(component) > 1 or node in graph[node]:
          out.append(component)
  return out


def test_every_module_has_a_layer():
  missing = [m for m in _modules() if _layer(m) is None]
  assert not missing, (
      f"{missing}: no layer; add the top-level name to LAYERS in "
      "tests/layers_test.py (the lowest layer whose modules it imports) and "
      "to docs/architecture.md")


def test_no_import_from_a_higher_layer():
  bad = []
  for module, targets in sorted(_graph().items()):
    for target in sorted(targets):
      lo, hi = _layer(module), _layer(target)
      if lo is not None and hi is not None and hi > lo:
        bad.append(f"{module} ({LAYER_NAMES[lo]}) imports {target} "
                   f"({LAYER_NAMES[hi]})")
  assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_no_computed_import_targets():
  bad = [f"{p.relative_to(ROOT)}:{line}" for p in _modules().values()
         for line in _computed_imports(p)]
  assert not bad, (
      f"{bad}: import_module/__import__ with a computed name; the layer "
      "test cannot see its target: write plain imports (an explicit tuple "
      "of modules instead of a list of names)")


def test_no_import_cycles():
  cycles = _cycles(_graph())
  new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
  assert not new, f"import cycles: {new}"
  gone = [sorted(c) for c in KNOWN_CYCLES if c not in cycles]
  assert not gone, (f"{gone}: no longer a cycle; delete it from KNOWN_CYCLES "
                    "in tests/layers_test.py")


# The rooms inside a package that are below one another: a module may
# import a module of an earlier room of its package, never a later one
# (e.g. the supernet's model may use its switch but the switch knows no
# model). Each new module of these packages is listed in one room.
ROOMS = {
    "hwnas.models": (("ops", "deepshift"), ("layers", "bn"), ("standalone",)),
    "hwnas.supernet": (("switch", "int8", "weights"), ("blocks",), ("model",),
                       ("extract", "channels", "train", "checkpoint"),
                       ("evaluate", "loop"), ("quant",)),
}


@pytest.mark.parametrize("package", sorted(ROOMS))
def test_rooms_of_a_package_import_one_way(package):
  modules = {m for m in _modules() if m.startswith(package + ".")}
  rooms = ROOMS[package]
  room_of = {f"{package}.{name}": i for i, names in enumerate(rooms)
             for name in names}
  assert modules == set(room_of), (
      f"{sorted(modules ^ set(room_of))}: list each module of {package} in "
      "ROOMS (tests/layers_test.py)")
  bad = [f"{m} imports {t}" for m in sorted(modules)
         for t in sorted(_graph()[m]) if t in room_of and
         room_of[t] > room_of[m]]
  assert not bad, "imports against the room order:\n" + "\n".join(bad)


# The checker itself, on small graphs and sources.


def test_cycle_finder():
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"},
           "f": set()}
  assert sorted(map(sorted, _cycles(graph))) == [["a", "b", "c"], ["e"]]
  assert not _cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}})


def test_imports_found_in_functions_relative_and_import_module(tmp_path):
  src = tmp_path / "m.py"
  src.write_text(
      "import os\n"
      "from hwnas import errors, __version__\n"
      "from . import table\n"
      "def f():\n"
      "  from hwnas.supernet.loop import train\n"
      "  import importlib\n"
      "  return importlib.import_module('hwnas.export.sources')\n"
      "def g(name):\n"
      "  return __import__(f'hwnas.{name}')\n")
  modules = {"hwnas", "hwnas.errors", "hwnas.latency", "hwnas.latency.m",
             "hwnas.latency.table", "hwnas.supernet", "hwnas.supernet.loop",
             "hwnas.export", "hwnas.export.sources"}
  assert _imports("hwnas.latency.m", src, modules) == {
      "hwnas", "hwnas.errors", "hwnas.latency.table", "hwnas.supernet.loop",
      "hwnas.export.sources"}
  assert _computed_imports(src) == [9]


@pytest.mark.parametrize("module, layer", [
    ("hwnas.errors", 0), ("hwnas.configs.supernet", 0),
    ("hwnas.edgetpu.ops", 1), ("hwnas.data.series", 1),
    ("hwnas.data.series_files", 1), ("hwnas.data.watch", 1),
    ("hwnas", 2), ("hwnas.models.layers", 2), ("hwnas.models.ops", 2),
    ("hwnas.supernet.loop", 3), ("hwnas.supernet.switch", 3),
    ("hwnas.supernet.extract", 3), ("hwnas.supernet.int8", 3),
    ("hwnas.supernet.weights", 3), ("hwnas.supernet.blocks", 3),
    ("hwnas.optim", 0), ("hwnas.train_standalone", 4),
    ("hwnas.export.sources", 4),
    ("hwnas.pipeline", 5), ("hwnas.quickstart", 5), ("hwnas.cli.search", 6),
    ("hwnas.newthing", None)])
def test_layer_lookup(module, layer):
  assert _layer(module) == layer
