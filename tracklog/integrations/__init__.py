"""Drop-in adoption: tracklog behind the APIs training scripts already use.

One short module per framework, each importing only that framework (lazily, where it
needs one at all) and the core: ``tensorboard`` (the ``SummaryWriter`` of tensorboardX
and ``torch.utils.tensorboard``) and ``wandb`` (the W&B module API). Nothing in the core
imports them; README, "Drop-in: TensorBoard and W&B scripts", has the mappings.
"""
