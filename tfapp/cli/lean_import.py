"""Start-up: keep three optional packages that TensorFlow's and Keras's imports pull in, and a run never uses,
out of a command's first seconds (docs/performance.md#figures-behind-the-code).

    python -X importtime -m tfapp.cli.train --helpshort 2>&1 | grep -E "\\| +(jax|matplotlib|sklearn)$"  # µs: absent

`import tensorflow` imports JAX for tf.lite's JAX converter, Keras imports matplotlib.pyplot for
`keras.visualization` and scikit-learn for `keras.wrappers`; each is optional there (`try: import … except
ImportError`). Inside `lean_imports()` they look absent, so those imports fail at once; afterwards they import
normally again (curves.png imports matplotlib when it draws). With KERAS_BACKEND=jax, JAX is imported as usual.
"""
import contextlib
import os
import sys

OPTIONAL = ("jax", "matplotlib", "sklearn")  # imported by TF / Keras only inside try … except ImportError


@contextlib.contextmanager
def lean_imports():
    """Within: `import jax`, `import matplotlib(.pyplot)` and `import sklearn` raise ImportError unless already
    imported (or, for JAX, the Keras backend is JAX); after: as before."""
    names = [name for name in OPTIONAL if name not in sys.modules
             and not (name == "jax" and os.environ.get("KERAS_BACKEND") == "jax")]
    for name in names:
        sys.modules[name] = None  # the import system's "known absent" marker
    try:
        yield
    finally:
        for name in names:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
