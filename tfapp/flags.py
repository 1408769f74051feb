"""The absl flags of `tfapp-train`, and their conversion into one `Config` (the only place FLAGS is read).

    tfapp-train --helpfull      # every flag, with its help text
    tfapp-train --flagfile=experiments/digits_mirrored.flags
"""
import dataclasses

from absl import flags

import pipelines
from tfapp import config as config_lib
from tfapp import tasks


def _task_help():
    return "; ".join(f"{name} (models: {', '.join(task.models)}; data: {task.default_data})"
                     for name, task in sorted(tasks.TASKS.items()))


def define_data_flags():
    """The flags that say where data is and how to read it (shared by tfapp-train and tfapp-data)."""
    if "data" in flags.FLAGS:
        return
    flags.DEFINE_string("data", None, "Data source KIND:LOCATION (gs:// paths work): embedded:digits, npz:PATH, "
                        "csv:PATH, images:DIR, 'tfrecord:GLOB', text:PATH, conll:PATH, 'corpus:GLOB', tfds:NAME[:VERSION], "
                        "py:pkg.module:function (your own: it returns (x, y) arrays, a dict of them or a Source). "
                        "Default: the task's own.")
    flags.DEFINE_string("data_dir", None, "TFDS data_dir for tfds: sources (default ~/tensorflow_datasets).")
    flags.DEFINE_boolean("download", False, "tfds: allow TFDS to download and prepare a missing dataset (needs "
                         "network); off, a missing dataset fails at once with how to prepare it.")
    flags.DEFINE_float("test_fraction", None, "Share of examples held out as the test split when the source has "
                       "no test split of its own (seeded by --seed). Default: per task (0.2; language_model: the first "
                       "0.05 of the text; its validation is nanoGPT's last 10%).")
    flags.DEFINE_float("validation_fraction", 0.1, "Share of the train split held out as the validation split "
                       "when the source has none of its own (TFDS validation, x_val/y_val in an npz): the same rows "
                       "on every "
                       "run and resume (seeded by --seed), stratified by class for classification, the last windows "
                       "of a time series. Periodic evaluation, early stopping, --target_metric and sweeps read it; "
                       "the test split is read once, at the end, on the kept checkpoint.")
    flags.DEFINE_integer("seed", 0, "Seed for the data split, shuffling and weight initialisation.")
    flags.DEFINE_string("label_column", None, "csv: the column to predict.")
    flags.DEFINE_integer("image_size", 64, "images: height and width images are resized to.")
    flags.DEFINE_integer("image_channels", None, "images: convert every image to 1, 3 or 4 channels; default: all "
                         "files must agree.")
    flags.DEFINE_boolean("strict", False, "images: an unreadable file is an error instead of being skipped.")
    flags.DEFINE_string("feature_spec", None, "tfrecord: JSON {name: {dtype, shape, encoding}} for 'x' and 'y' "
                        "when no spec.json lies beside the shards.")
    flags.DEFINE_string("time_column", None, "csv: a time series' time column (rows are sorted by it); with "
                        "--value_column the file is cut into --window -> --horizon examples (forecasting).")
    flags.DEFINE_string("value_column", None, "csv: the time series' values to forecast.")
    flags.DEFINE_integer("window", None, "Forecasting: past values per example. Default: per task (24).")
    flags.DEFINE_integer("horizon", None, "Forecasting: future values predicted per example. Default: 1.")
    flags.DEFINE_integer("sequence_length", None, "Text tasks: tokens per example (pad/truncate). Default: the "
                         "95th percentile of training lengths, rounded up to a multiple of 8; language_model: "
                         "characters of context per window (64).")


def load_options_from_flags(flag_values=flags.FLAGS):
    values = {field.name: flag_values[field.name].value for field in dataclasses.fields(pipelines.LoadOptions)}
    values["test_fraction"] = 0.2 if values["test_fraction"] is None else values["test_fraction"]
    return pipelines.LoadOptions(**values)


def define_flags():
    """Defines the training flags on absl's global FLAGS (once)."""
    if "task" in flags.FLAGS:
        return
    define_data_flags()
    flags.DEFINE_string("task", "digits", f"Task to train. Valid: {_task_help()}; or pkg.module:NAME, a "
                        "tfapp.Task of your own (docs/own-model.md).")
    flags.DEFINE_string("model", None, "Model of the task (see --task for the names), or pkg.module:function, your "
                        "own: function(config, spec) returns a Keras model for the task's data. Default: the task's "
                        "first.")
    flags.DEFINE_boolean("augment", False, "Image tasks: random horizontal flip and pad-4-random-crop of training "
                         "images in the pipeline (eval is never augmented).")
    flags.DEFINE_string("weights", None, "Local Keras Applications weights file for --model=transfer "
                        "(image_folder: MobileNetV2 'no top' .h5); nothing is downloaded.")
    flags.DEFINE_integer("season", None, "Forecasting: season length (in steps) of the seasonal-naive baseline, "
                         "e.g. 12 for monthly data. Default: per task (12).")
    flags.DEFINE_integer("vocab_size", 20000, "Text tasks: vocabulary size (the most frequent training words, "
                         "counting padding and unknown).")
    flags.DEFINE_string("user_column", None, "Recommendation: the user id column. Default: per task (user_id).")
    flags.DEFINE_string("item_column", None, "Recommendation: the item id column. Default: per task (item_id).")
    flags.DEFINE_string("cache", "memory", "Cache decoded training examples: memory, none, or a file path prefix.")
    flags.DEFINE_string("model_dir", None, "Run directory (local, gs://, …): checkpoints, metrics.csv, curves.png, "
                        "report.json, TensorBoard, export/. Must be new or empty. Default: runs/<task>-<timestamp>.")
    flags.DEFINE_integer("batch_size", None, "Global batch size, split evenly across replicas. Default: per task "
                         "(digits: 64).")
    flags.DEFINE_integer("train_steps", None, "Steps (batches) to train; with --gradient_accumulation_steps=N the "
                         "weights are updated every N of them. Default: per task (digits: 600).")
    flags.DEFINE_integer("eval_every", None, "Evaluate on the validation split every N steps (and at the end). "
                         "Default: per task (digits: 100).")
    flags.DEFINE_float("learning_rate", None, "Peak learning rate. Default: per task (digits: 2e-3).")
    flags.DEFINE_float("dropout", None, "Dropout rate of the transformer and recurrent models (language_model gpt, "
                       "gpt_small, lstm; text_classification transformer, bigru; token_classification bilstm, "
                       "transformer). Default: the model's own (gpt, lstm: none; text: 0.1 in the blocks, 0.3 before "
                       "the head; NER: 0.2 on the embeddings).")
    flags.DEFINE_float("weight_decay", None, "Decoupled weight decay (AdamW; Muon's own for its matrices) on kernels "
                       "and embeddings, not on biases and norms. Default: per task (0).")
    flags.DEFINE_float("clipnorm", None, "Clip the gradients to this global norm before each update; default: no "
                       "clipping.")
    flags.DEFINE_integer("gradient_accumulation_steps", 1, "Update the weights every N steps with the mean of N "
                         "steps' gradients (Keras optimizers' own accumulation; both engines): N x --batch_size "
                         "examples per update without the memory of a larger batch.")
    flags.DEFINE_enum("keep", "best", list(config_lib.KEEP_CHOICES), "The checkpoint tested and exported at the "
                      "end: best (the evaluation with the best main validation metric; report.json says its step) "
                      "or last.")
    flags.DEFINE_enum("optimizer", None, list(config_lib.OPTIMIZERS),
                      "adam, or muon (keras.optimizers.Muon: Newton-Schulz-orthogonalized momentum for 2-D kernels, "
                      "Adam for embeddings, the output layer, biases and other shapes; ~3x fewer characters than "
                      "nanoGPT's AdamW recipe to a language-model val loss of 1.88 here). Default: per task (adam; language_model: muon).")
    flags.DEFINE_enum("strategy", "auto", list(config_lib.STRATEGIES),
                      "tf.distribute strategy. auto: TPU if one is attached (local signals only), else Mirrored "
                      "over several GPUs or --num_cpu_devices>1, else one device.")
    flags.DEFINE_enum("backend", "tensorflow", list(config_lib.BACKENDS),
                      "tensorflow: tf.distribute strategies and tfapp's multi-step loop. jax: the Keras JAX backend "
                      "and tfapp's jitted multi-step loop under keras.distribution.DataParallel over all JAX devices "
                      "of all processes (free Colab TPUs, whose TensorFlow has no TPU runtime; TPU pods); always XLA; "
                      "checkpoints, resume, signals and --on_nan as on tensorflow; the pipeline stays tf.data.")
    flags.DEFINE_integer("model_parallel", 1, "--backend=jax: split each model over M devices (model parallelism: "
                         "keras.distribution.ModelParallel on a (devices/M, M) mesh; the task's layout rules, e.g. "
                         "Megatron-style for the transformer, else every kernel whose last dimension divides by M); "
                         "the global batch is split over the devices/M groups.")
    flags.DEFINE_string("tpu", None, "TPU name or grpc:// address for --strategy=tpu|auto; default: the local TPU.")
    flags.DEFINE_integer("num_cpu_devices", None, "Split the CPU into N logical devices (to run Mirrored on a "
                         "CPU-only machine).")
    flags.DEFINE_string("steps_per_loop", "auto", "Optimizer steps per host round-trip (one tf.function call), "
                        "or auto: the largest of 1, 4, 16, 64, 256 whose loop lasts at most 0.5 s at the measured "
                        "speed. Progress, eval, checkpoints and signals are handled between loops.")
    flags.DEFINE_enum("xla", None, list(config_lib.XLA_TO_JIT),
                      "XLA compilation of the train step. off: none; step: one XLA program per step; loop: one "
                      "XLA program for all the steps of a loop over a block of in-memory batches (one replica, "
                      "in-memory data; otherwise the same as step); auto (default): measured, off, per step and per "
                      "loop, on the real task (always on for TPU; off for Mirrored over logical CPUs, where XLA "
                      "cannot run; per step without measuring for models measured to win under XLA: "
                      "language_model gpt). The JAX engine compiles every step: auto is a rule there.")
    flags.DEFINE_enum("jit_compile", "auto", list(config_lib.JIT_CHOICES),
                      "The alias of --xla, in Keras's words: false = off, true = step, block = loop.")
    flags.DEFINE_float("autotune_seconds", 10.0, "At most this many seconds for measuring the auto settings, and "
                       "never more than ~15% of the planned run; the measurements go into report.json under "
                       "'autotune'.")
    flags.DEFINE_enum("autotune", "cache", list(config_lib.AUTOTUNE_CHOICES),
                      "cache: reuse the auto settings measured earlier for the same device, versions, task, model, "
                      "batch, strategy and precision (in $TFAPP_CACHE_DIR, default ~/.cache/tfapp); measure: "
                      "measure again and replace the cached entry.")
    flags.DEFINE_enum("mixed_precision", "none", list(config_lib.PRECISION_CHOICES),
                      "Compute dtype: none (float32), bfloat16 (CPUs with AVX512-BF16/AMX, TPUs, GPUs from A100), "
                      "float16 (GPUs; adds dynamic loss scaling), or auto: bfloat16 where the device computes it "
                      "natively and a short check on the task (float32 and bfloat16 trained 50 steps each from the "
                      "same weights) finds it >= 1.1x faster with >= 90% of float32's fall in training loss, float32 otherwise; "
                      "cached like autotune, recorded in report.json['precision']. Variables stay float32.")
    flags.DEFINE_enum("lr_schedule", None, list(config_lib.LR_SCHEDULES),
                      "Learning-rate schedule: constant, or cosine decay to 0 over --train_steps after "
                      "--warmup_steps of linear warmup. Default: per task (constant; language_model: cosine).")
    flags.DEFINE_integer("warmup_steps", None, "Linear warmup steps for --lr_schedule=cosine. Default: per task "
                         "(0; language_model: 100).")
    flags.DEFINE_integer("early_stopping_patience", 0, "Stop after N evaluations without improvement of the "
                         "task's main metric (Keras EarlyStopping); 0 = off.")
    flags.DEFINE_float("target_metric", None, "A value of the task's main eval metric (e.g. 0.97 accuracy, or an "
                       "MAE to get below); report.json records time_to_target_s and step_to_target when first reached.")
    flags.DEFINE_integer("checkpoint_every", None, "Steps between checkpoints (model, optimizer, step; the input "
                         "position follows from the step). Default: --eval_every.")
    flags.DEFINE_boolean("resume", True, "Continue from the latest checkpoint in --model_dir when there is one; "
                         "--noresume starts fresh in a new directory (<model_dir>-2, -3, …), never overwriting.")
    flags.DEFINE_enum("on_nan", "stop", ["stop", "restore"], "When the loss becomes NaN/Inf: stop (keep the last "
                      "good checkpoint, report the step, exit status 3) or restore (reload the last good "
                      "checkpoint, halve the learning rate, at most --max_nan_retries times).")
    flags.DEFINE_integer("max_nan_retries", 3, "Restores allowed by --on_nan=restore.")
    flags.DEFINE_boolean("deterministic", False, "Op determinism (tf.config.experimental.enable_op_determinism): "
                         "the same seed gives identical metrics.csv and checkpoints; auto settings are fixed, not measured "
                         "(XLA off unless --jit_compile=true, 16 steps per loop).")
    flags.DEFINE_boolean("export", True, "Export a SavedModel to <model_dir>/export/<version>/ after training.")
    flags.DEFINE_boolean("tflite", False, "With --export: also convert serving_default to "
                         "<model_dir>/export/<version>/model.tflite (TFLite/LiteRT).")
    flags.DEFINE_boolean("smoke", False, "Use the task's smoke size (a few steps on the same data): for tests "
                         "and quick checks.")


def train_flag_names():
    """The names of tfapp-train's own flags (the Config fields and --smoke)."""
    return [field.name for field in dataclasses.fields(config_lib.Config)] + ["smoke"]


def config_from_flags(flag_values=flags.FLAGS):
    """Reads the parsed flags into a resolved, validated Config (raises config.ConfigError)."""
    names = [field.name for field in dataclasses.fields(config_lib.Config)]
    raw = config_lib.Config(**{name: flag_values[name].value for name in names})
    return raw.resolved(smoke=flag_values.smoke)
