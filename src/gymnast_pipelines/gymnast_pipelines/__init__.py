"""Pipelines: the jobs that use the world model, the policy and the judge together.

RL in the dream or the reality (`rl`, with its gate in `gate`), the dream-to-real benchmark
(`bench`), the main job and data commands (`commands`), the judge's training (`train_judge`) and
calibration (`calibrate`), and the ROS node that runs test-time training (`trainer_node`).
The model packages depend on gymnast_core only; gymnast_bringup composes these pipelines.
"""
