"""Plain-PyTorch fine-tuning loops and recipes; the layer above :mod:`avperceive.models`.

* :mod:`avperceive.train.finetune` -- the SoundActions reduced-type fine-tuning (``FinetuneConfig``,
  ``finetune``, ``cross_validate``, ``replace_head``, ``soundactions_loss``), also under ``torchrun``.

The fine-tuning ranges themselves (which parts of a model train) are a property of the model:
:func:`avperceive.models.set_trainable`. Nothing is re-exported here, so that
``avperceive.train.finetune`` is always the module (its function is ``avperceive.train.finetune.finetune``).
"""
