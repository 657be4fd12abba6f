"""The workstation half of each task (the device half: ``edgekit.tasks``).

A recipe's ``task`` picks what ``export.distill`` reads, the head it trains and the logit loss;
the Trainer, checkpoints, intermediate-layer terms, ONNX/TFLite export, int8 and the evaluation
through the device runner are shared. Extractive QA's half is the windowing and alignment of
``export.train_features``, ``export.align`` and ``export.teacher_cache`` with
``export.losses.qa_kd_loss``; text classification's is ``export.tasks.classification``.
"""
