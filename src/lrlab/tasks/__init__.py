"""Tasks: dataset + model + loss + metric + default batch size, budget and target.

lrlab's own tasks are in `TASKS`; `get_task` also builds a user's task from a reference
(``path/to/file.py:function`` or ``package.module:function``); `lm_task` builds the ``lm``
task on a text file of your own.
"""

from lrlab.tasks.catalog import (
    TASKS,
    get_task,
    is_reference,
    load_task_data,
    load_tensor_data,
    task_id,
)
from lrlab.tasks.lm import lm_task
from lrlab.tasks.task import (
    AnyData,
    LossKind,
    MetricKind,
    MetricSum,
    Sampling,
    StreamData,
    Task,
    TaskData,
    TensorBatches,
    evaluate,
    evaluate_batches,
)

__all__ = [
    "TASKS",
    "AnyData",
    "LossKind",
    "MetricKind",
    "MetricSum",
    "Sampling",
    "StreamData",
    "Task",
    "TaskData",
    "TensorBatches",
    "evaluate",
    "evaluate_batches",
    "get_task",
    "is_reference",
    "lm_task",
    "load_task_data",
    "load_tensor_data",
    "task_id",
]
