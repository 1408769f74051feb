"""tfapp: fast Keras + TensorFlow training loops for real tasks. `pip install -e ".[test]"` then `tfapp-train`."""
import setuptools

setuptools.setup(
    name="tfapp",
    version="0.1.0",
    description="Train, evaluate, plot and export Keras models fast on any tf.distribute strategy",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["tfapp", "tfapp.*", "pipelines", "pipelines.*",
                                               "strategies", "strategies.*"]),
    package_data={"pipelines": ["data/*.npz", "data/*.csv", "data/*.tsv", "data/*.conll", "data/*.txt", "data/README.md"]},
    # Ranges tested together (Python 3.11, 2026-11): TF 2.21.0, Keras 3.15.1, TFDS 4.9.10, absl 2.5.1,
    # matplotlib 3.11.2, TensorBoard 2.21. On TPU VMs install tensorflow-tpu pinned to its last release instead.
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorboard>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "tensorflow-datasets>=4.9.10,<4.10",
        "importlib_resources>=6",  # TFDS 4.9 on Python 3.11 imports it
        "absl-py>=2.1,<3",
        "matplotlib>=3.9,<4",
        "numpy>=1.26,<3",
        "pillow>=10,<14",  # checks image files once at load
    ],
    extras_require={
        # --backend=jax (free Colab TPUs: install jax[tpu] there instead). 0.10.2 is the last jax for Python 3.11.
        "jax": ["jax==0.10.2", "jaxlib==0.10.2"],
        # pytest-xdist: one worker per core, at most 4 (pytest.ini); most tests wait on one process at a time
        "test": ["pytest>=8,<10", "pytest-xdist==3.8.0", "scikit-learn>=1.5,<2", "jax==0.10.2", "jaxlib==0.10.2",
                 "nbclient>=0.10,<0.12", "nbformat>=5.10,<6", "ipykernel>=6.29,<8"],
    },
    entry_points={"console_scripts": ["tfapp-train=tfapp.cli.train:run", "tfapp-data=tfapp.cli.data:run",
                                        "tfapp-predict=tfapp.cli.predict:run", "tfapp-export=tfapp.cli.export:run",
                                        "tfapp-compare=tfapp.cli.compare:run", "tfapp-sweep=tfapp.cli.sweep:run"]},
)
