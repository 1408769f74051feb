"""The engines' declared interface and the layout it keeps: both engines implement `tfapp.engines.Engine`, both
trainers `Trainer`; no import circles; only the CLIs import tfapp.run; the shared run code does not test which
engine it drives; --xla and its alias --jit_compile."""
import ast
import inspect
import os

import pytest

from tfapp import config as config_lib
from tfapp import engines, jax_loop, loop

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGES = ("tfapp", "pipelines", "strategies")


def _modules():
    """{dotted module name: path} of the project's packages."""
    found = {}
    for package in PACKAGES:
        for folder, _, files in os.walk(os.path.join(ROOT, package)):
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    dotted = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    found[dotted.removesuffix(".__init__")] = path
    return found


def _imports(modules):
    """{module: the project modules it imports anywhere in its code (top level or inside functions)}."""
    graph = {}
    for name, path in modules.items():
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names if alias.name in modules)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in modules else base)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return components


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles_and_only_the_clis_import_tfapp_run():
    graph = _imports(_modules())
    assert "tfapp.engines.jax_engine" in graph and "tfapp.training" in graph["tfapp.own_model"]
    assert _cycles(graph) == []
    assert sorted(m for m, deps in graph.items() if "tfapp.run" in deps and not m.startswith("tfapp.cli.")) == []


@pytest.mark.parametrize("name", ["run", "training", "report", "host_loop"])
def test_the_shared_run_code_does_not_test_the_engine(name):
    source = open(os.path.join(ROOT, "tfapp", f"{name}.py")).read()
    code = ast.unparse(ast.parse(source))  # without comments; docstrings stay but name no engine in quotes
    assert "'jax'" not in code and "'tensorflow'" not in code and ".engine ==" not in code


@pytest.mark.parametrize("name", list(engines.MODULES))
def test_each_engine_implements_the_declared_interface(name):
    engine = engines.get(name)
    assert isinstance(engine, engines.Engine) and engine.NAME == name
    for member in ("prepare", "choose_trainer", "step_flops", "device_peak", "export_preparer", "write_export",
                   "report_extras"):
        declared = inspect.signature(getattr(engines.Engine, member)).parameters
        implemented = inspect.signature(getattr(engine, member)).parameters
        assert list(implemented) == [p for p in declared if p != "self"], (name, member)
    with pytest.raises(ValueError, match="--backend=torch"):
        engines.get("torch")


@pytest.mark.parametrize("trainer", [loop.Trainer, jax_loop.JaxTrainer])
def test_each_trainer_has_the_methods_the_host_loop_calls(trainer):
    methods = [name for name, value in vars(engines.Trainer).items()
               if inspect.isfunction(value) and not name.startswith("_")]
    assert len(methods) == 7
    for method in methods:
        assert inspect.isfunction(getattr(trainer, method, None)), (trainer.__name__, method)


def test_xla_names_and_the_jit_compile_alias():
    def resolved(**values):
        return config_lib.Config(task="digits", **values).resolved()

    for xla, jit in (("off", "false"), ("step", "true"), ("loop", "block"), ("auto", "auto")):
        config = resolved(xla=xla)
        assert config.jit_compile == jit and config.xla is None
        assert resolved(jit_compile=jit).jit_compile == jit
        assert resolved(xla=xla, jit_compile=jit).jit_compile == jit
    assert resolved(jit_compile=True).jit_compile == "true"  # tfapp.fit(..., jit_compile=True)
    with pytest.raises(config_lib.ConfigError, match="--xla=loop and --jit_compile=true disagree"):
        resolved(xla="loop", jit_compile="true")
    with pytest.raises(config_lib.ConfigError, match="--xla: 'fast' is not one of auto, off, step, loop"):
        resolved(xla="fast")
