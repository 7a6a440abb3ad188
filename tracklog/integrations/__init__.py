"""Drop-in adoption: tracklog behind the APIs training scripts already use.

One short module per framework, each importing only that framework (lazily, where it
needs one at all) and the core: ``tensorboard`` (the ``SummaryWriter`` of tensorboardX
and ``torch.utils.tensorboard``) and ``wandb`` (the W&B module API), which need neither
library; ``lightning`` (a Lightning ``Logger``), ``transformers`` (a Hugging Face
``TrainerCallback``) and ``keras`` (a Keras 3 callback), which import theirs when
imported, sharing ``_common`` (params flattened, numbers picked out, fits that raised).
Nothing in the core imports them; README, "Drop-in", has the mappings.
"""
