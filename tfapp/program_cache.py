"""`--backend=jax`: the compiled train program of a built-in task kept between runs, so the same command again
skips tracing and lowering it, not only XLA's compile.

    TFAPP_CACHE_DIR=/tmp/c tfapp-train --backend=jax --task=language_model   # programs in /tmp/c/jax-programs/
    TFAPP_PROGRAM_CACHE=0 tfapp-train --backend=jax …                        # off (JAX's own cache still applies)

JAX's persistent compilation cache (`tfapp.compile_cache`) is keyed by the lowered program, so a run must trace
its step function and lower it before it can look the program up: on the language model that was most of the
time to the first step of a second run (docs/performance.md#accelerator). This cache is keyed instead by
everything the program is made from, known before tracing:

- tfapp's own source (every .py file of the tfapp, pipelines and strategies packages),
- the versions of JAX, jaxlib and Keras, the devices and Keras's global settings,
- the run's configuration (all flags but --model_dir) and the data's fitted spec (vocabularies, sizes, statistics:
  what a task may build into the model as constants),
- the trainer's setting (XLA mode, block, batch) and the shapes, dtypes and shardings of every argument.

So it is used only where tfapp's source and the flags say all there is to say about the program: a built-in task
and model on data that is not a Python function (`--task`, `--model`, `--data=py:` pointing at user code, and
`tfapp.fit`'s own models, skip it). A program is the one `jax.experimental.serialize_executable` writes; an entry
that cannot be read or does not take the run's arguments is ignored (and compiled again). Writes are atomic; the
oldest entries beyond MAX_BYTES are deleted at each start.
"""
import dataclasses
import hashlib
import io
import logging
import os
import pickle
import tempfile
import threading

import numpy as np

from tfapp import compile_cache, local_cache

MAX_BYTES = 512 * 2**20
PACKAGES = ("tfapp", "pipelines", "strategies")  # whose source makes the program
_source_digest = None


def enabled():
    return os.environ.get("TFAPP_PROGRAM_CACHE", "1") != "0" and os.environ.get("TFAPP_COMPILE_CACHE", "1") != "0"


def source_digest():
    """sha256 of every .py file of tfapp's packages (computed once per process)."""
    global _source_digest
    if _source_digest is None:
        import importlib
        digest = hashlib.sha256()
        for package in PACKAGES:
            root = os.path.dirname(importlib.import_module(package).__file__)
            for folder, subfolders, names in os.walk(root):
                subfolders.sort()
                for name in sorted(names):
                    if name.endswith(".py"):
                        path = os.path.join(folder, name)
                        digest.update(os.path.relpath(path, root).encode())
                        with open(path, "rb") as f:
                            digest.update(f.read())
        _source_digest = digest.hexdigest()
    return _source_digest


class Unkeyable(TypeError):
    """A value whose content cannot be written into a key exactly (the program is then not cached)."""


def digest(value, into=None):
    """sha256 (hex) of a nested value of dicts, lists, tuples, dataclasses, numbers, strings, numpy arrays and
    tensor specs; raises Unkeyable for anything else (its repr could be lossy or change between runs)."""
    h = into or hashlib.sha256()
    if value is None or isinstance(value, (bool, int, float, str, bytes, np.generic)):
        h.update(f"{type(value).__name__}:{value!r};".encode())
    elif isinstance(value, np.ndarray):
        h.update(f"array:{value.dtype.str}:{value.shape}:".encode())
        h.update(value.tobytes() if value.dtype != object else repr(value.tolist()).encode())
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)}:".encode())
        for key in sorted(value, key=repr):
            digest(key, h)
            digest(value[key], h)
    elif isinstance(value, (list, tuple)):
        h.update(f"{type(value).__name__}:{len(value)}:".encode())
        for item in value:
            digest(item, h)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        h.update(f"dataclass:{type(value).__name__}:".encode())
        digest({field.name: getattr(value, field.name) for field in dataclasses.fields(value)}, h)
    elif hasattr(value, "shape") and hasattr(value, "dtype") and not hasattr(value, "__array__"):
        # tf.TensorSpec, jax.ShapeDtypeStruct: shape, dtype and (JAX) sharding
        h.update(f"spec:{tuple(value.shape)}:{np.dtype(getattr(value.dtype, 'as_numpy_dtype', value.dtype)).str}:"
                 f"{getattr(value, 'sharding', None)};".encode())
    elif hasattr(value, "numpy"):  # a tf.Tensor
        digest(np.asarray(value.numpy()), h)
    else:
        raise Unkeyable(f"cannot key a {type(value).__name__}")
    return h.hexdigest() if into is None else None


def run_key(config, spec):
    """The part of the key a run's engine knows (flags and fitted data), or None where the program also depends on
    code outside tfapp (a user's task, model or data function) or on a value that cannot be keyed."""
    from tfapp import tasks
    if not enabled() or config.task not in tasks.TASKS or ":" in str(config.model) or \
            str(config.data).startswith("py:"):
        return None
    import jax
    import jaxlib
    import keras
    flags = {name: value for name, value in dataclasses.asdict(config).items() if name != "model_dir"}
    try:
        return digest({"source": source_digest(), "flags": flags, "spec": spec,
                       "versions": (jax.__version__, jaxlib.__version__, keras.__version__),
                       "devices": [(d.platform, d.device_kind, d.id, d.process_index) for d in jax.devices()],
                       "keras": (keras.config.floatx(), keras.config.image_data_format(), keras.config.epsilon(),
                                 str(keras.config.dtype_policy().name))})
    except Unkeyable:
        return None


def program_key(run, args, setting):
    """The key of one program: the run's key (run_key; None: not cached, returns None), the trainer's `setting`
    and the structure, shapes, dtypes and shardings of the program's `args`."""
    if not run:
        return None
    import jax
    leaves, structure = jax.tree.flatten(args)
    return digest({"run": run, "setting": setting, "structure": str(structure),
                   "arguments": [(tuple(np.shape(leaf)), str(leaf.dtype), str(getattr(leaf, "sharding", None)))
                                 for leaf in leaves]})


def _takes(program, args):
    """Whether a loaded compiled `program` takes `args` (their structure, shapes and dtypes)."""
    import jax
    expected = program.in_avals[0]
    if jax.tree.structure(expected) != jax.tree.structure(args):
        return False
    return all(tuple(a.shape) == tuple(np.shape(b)) and np.dtype(a.dtype) == np.dtype(b.dtype)
               for a, b in zip(jax.tree.leaves(expected), jax.tree.leaves(args)))


def folder():
    import jax
    return local_cache.path("jax-programs", compile_cache.machine_key(f"jax {jax.__version__}"))


class _KeyListener(logging.Handler):
    """Catches the key under which JAX's persistent cache holds a program compiled in this thread."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.thread, self.key = threading.get_ident(), None

    def emit(self, record):
        if threading.get_ident() == self.thread and "persistent compilation cache" in str(record.msg).lower() and \
                len(record.args or ()) == 2:
            self.key = record.args[1]


def compile_program(lowered):
    """(lowered.compile(), the key of JAX's persistent-cache entry that holds it, or None). A program JAX read from
    its cache cannot be serialized again whole (XLA:CPU drops its kernels: "Function … not found" when run), so an
    entry of this cache refers to JAX's entry where there is one, and holds the program itself only otherwise."""
    logger = logging.getLogger("jax._src.compiler")
    listener, level, propagate = _KeyListener(), logger.level, logger.propagate
    logger.addHandler(listener)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # JAX's debug lines stay out of the run's log
    try:
        program = lowered.compile()
    finally:
        logger.removeHandler(listener)
        logger.setLevel(level)
        logger.propagate = propagate
    return program, listener.key


def _picklers():
    """serialize_executable's (pickler, unpickler) with one more kind of reference: ("jax-cache", key), a program
    in JAX's persistent cache."""
    from jax._src import compilation_cache
    from jax.experimental import serialize_executable

    class Pickler(serialize_executable._JaxPjrtPickler):  # noqa: SLF001 - its pickling of devices and clients
        def __init__(self, file, jax_key):
            super().__init__(file)
            self.jax_key = jax_key

        def persistent_id(self, obj):
            reference = super().persistent_id(obj)
            if reference and reference[0] == "exec" and self.jax_key:
                return ("jax-cache", self.jax_key)
            return reference

    class Unpickler(serialize_executable._JaxPjrtUnpickler):  # noqa: SLF001
        def persistent_load(self, pid):
            if pid[0] == "jax-cache":
                executable, _ = compilation_cache.get_executable_and_time(pid[1], None, self.backend,
                                                                          self.execution_devices)
                if executable is None:
                    raise pickle.UnpicklingError(f"JAX's cache no longer holds {pid[1]}")
                return executable
            return super().persistent_load(pid)

    return Pickler, Unpickler


def load(key, args=None):
    """The compiled program stored under `key`, or None (missing, unreadable, evicted from JAX's cache, from
    another JAX, or not taking `args` where they are given)."""
    import jax
    path = os.path.join(folder(), f"{key}.program")
    try:
        with open(path, "rb") as f:
            payload, in_tree, out_tree = pickle.load(f)
        backend = jax.devices()[0].client
        _, unpickler = _picklers()
        unloaded, args_info, no_kwargs = unpickler(io.BytesIO(payload), backend).load()
        program = jax.stages.Compiled(unloaded.load(), [], in_tree.unflatten(args_info), out_tree,
                                      no_kwargs=no_kwargs)
        if args is not None and not _takes(program, args):
            return None
    except Exception:  # noqa: BLE001 - a cache only saves time: anything wrong with an entry means compile again
        return None
    try:
        os.utime(path)  # recently used: pruned last
    except OSError:
        pass
    return program


def save_in_background(key, program, jax_key=None):
    """Writes `program` (from compile_program, with its `jax_key`) under `key` in a daemon thread (atomically: a
    temporary file, then a rename); returns the thread. Nothing is written where the folder cannot be, or where the
    program has compile-time constants (serialize_executable cannot keep them)."""
    def save():
        import jax
        directory = folder()
        temporary = None
        try:
            unloaded = program._executable._unloaded_executable  # noqa: SLF001 - what serialize_executable pickles
            if unloaded is None or program._params.const_args:  # noqa: SLF001
                return
            args_info, in_tree = jax.tree_util.tree_flatten(program.args_info)
            from jax._src import compilation_cache
            reference = jax_key if jax_key and compilation_cache.is_executable_in_cache(
                jax.devices()[0].client, jax_key) else None  # JAX did not write it: the program itself (compiled now)
            pickler, _ = _picklers()
            with io.BytesIO() as file:
                pickler(file, reference).dump((unloaded, args_info, program._no_kwargs))  # noqa: SLF001
                payload = file.getvalue()
            os.makedirs(directory, exist_ok=True)
            compile_cache.prune(directory, MAX_BYTES)
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
            with os.fdopen(handle, "wb") as f:
                pickle.dump((payload, in_tree, program.out_tree), f)
            os.replace(temporary, os.path.join(directory, f"{key}.program"))
        except Exception:  # noqa: BLE001 - a cache only saves time
            if temporary and os.path.exists(temporary):
                os.remove(temporary)

    thread = threading.Thread(target=save, name="tfapp-program-cache", daemon=True)
    thread.start()
    return thread
