"""Names that commands, nodes and tests share: topics, actions and services, the blocks of
initial-state seeds, and the default and shipped paths.

Initial states come from seeds. The 'eval' split's seeds start at EVAL_SEED_OFFSET; within a
split, each purpose draws from its own block, so no two purposes share an initial state.
"""

# The Bridge setup's topics: the real camera and arm, or the dream in their place.
IMAGE_TOPIC = "/blue/image_raw"
ACTION_TOPIC = "/wx250s/commands/ee_delta"
JOINT_STATES_TOPIC = "/wx250s/joint_states"
# The project's own topics, actions and services (gymnast_interfaces types).
HEARTBEAT_TOPIC = "/gymnast/heartbeat"
ESTOP_TOPIC = "/gymnast/estop"
POLICY_CHECKPOINT_TOPIC = "/gymnast/policy/checkpoint"
ACTION_CHUNK_TOPIC = "/gymnast/action_chunk"
POLICY_STATUS_TOPIC = "/gymnast/policy/status"
RUN_POLICY_ACTION = "/gymnast/run_policy"
TRAIN_IN_SCENE_ACTION = "/gymnast/train_in_scene"
JUDGE_SERVICE = "/gymnast/judge"
DREAM_RESET_SERVICE = "/dream/reset"

EVAL_SEED_OFFSET = 1_000_000
# 'train' split: `gymnast collect`'s sources, RL's task states and its real validation.
COLLECT_SEED_BLOCKS = {"expert": 0, "noisy": 100_000, "random": 200_000, "stopped": 500_000}
RL_TASK_SEEDS = 300_000
VALIDATION_SEEDS = 400_000
# 'eval' split: `gymnast judge-eval`'s test episodes (the benchmark's evaluation starts at 0).
JUDGE_TEST_SEEDS = 500_000

# Default folders, relative to the working directory: what the commands write and read.
OUTPUTS = "outputs/default"
DATA = f"{OUTPUTS}/data"
WORLD_MODEL_DIR = f"{OUTPUTS}/world_model"
WORLD_MODEL_CHECKPOINT = f"{WORLD_MODEL_DIR}/checkpoint.pt"
SFT_POLICY = f"{OUTPUTS}/policy_sft"
JUDGE = f"{OUTPUTS}/judge"
# Teleop recordings (MCAP) of the real graph, and other runs outside the main job.
TELEOP_RECORDINGS = "outputs/teleop"
SCENE_TRAINING = "outputs/scene_training"
# The checkpoints the project ships: the main job and the ROS nodes start from them.
SHIPPED = "checkpoints/default"
SHIPPED_WORLD_MODEL = f"{SHIPPED}/world_model.pt"
SHIPPED_POLICY = f"{SHIPPED}/policy_sft"
SHIPPED_JUDGE = f"{SHIPPED}/judge"
