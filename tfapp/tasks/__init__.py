"""The task registry: `TASKS[name]` -> Task. Adding a task = one file here and one line below.

    python -c "from tfapp import tasks; print(sorted(tasks.TASKS))"
"""
from tfapp.tasks import digits, forecasting, images, language_model, ner, recommendation, signals, tabular, text
from tfapp.tasks.task import Task

TASKS = {
    "digits": digits.TASK,
    "image_classification": images.IMAGE_CLASSIFICATION,
    "image_folder": images.IMAGE_FOLDER,
    "regression": tabular.REGRESSION,
    "classification": tabular.CLASSIFICATION,
    "signal_classification": signals.TASK,
    "text_classification": text.TASK,
    "token_classification": ner.TASK,
    "forecasting": forecasting.TASK,
    "recommendation": recommendation.TASK,
    "language_model": language_model.TASK,
}


def get_task(name):
    """The Task called `name`; ValueError listing the valid names otherwise."""
    if name not in TASKS:
        raise ValueError(f"--task: unknown task {name!r}; valid: {', '.join(sorted(TASKS))}")
    return TASKS[name]


__all__ = ["TASKS", "Task", "get_task"]
