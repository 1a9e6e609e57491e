"""RODS inside TRL's `GRPOTrainer` (`rods train --trainer trl`; the optional extra `trl`).

The same buffer, detector and synthesis service drive an established multi-GPU trainer
(accelerate / DeepSpeed / FSDP, TRL's vLLM server); the native loop (`trainer.loop`) stays for
the CPU demo and single-device runs. Modules: `dataset` (the buffer as an identical-per-process
dataset), `rollout` (multi-turn episodes as TRL's `rollout_func`), `reward` (R_P as TRL's
reward function, plus report / detect / publish / epoch end), `loop` (`train_trl`).

Only this package imports `trl`, `datasets` and `accelerate`; the CLI imports it lazily.
"""
