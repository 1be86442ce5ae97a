"""Meta-World (MuJoCo) tasks as the evaluation "reality", and a shifted "software simulator".

Reality: Meta-World's goal-observable v3 tasks seen from one fixed third-person camera,
rendered upright at `image_size` pixels, stepped with an action repeat so one policy step
moves the arm visibly (3 env steps; 40 policy steps fit every default task's expert).
Success is the environment's own flag, latched once reached (AutoEval's role).

Software simulator (`ShiftConfig`): the same tasks with a systematic shift, as a hand-built
simulator differs from the real scene:
  look      every colour multiplied by `tint`, lights scaled by `light_scale`,
            the camera turned by `camera_azimuth_offset` / `camera_elevation_offset` degrees
            and moved by `camera_distance_scale`;
  dynamics  friction x `friction_scale`, every body's mass x `mass_scale`,
            hand displacement per action x `action_gain`, gripper gain x `gripper_gain`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from gymnast_core.action_spec import ActionSpec
from gymnast_core.config_checks import at_least
from gymnast_core.names import EVAL_SEED_OFFSET
from gymnast_core.task import Task

# Tasks where a few demos leave the policy room to learn and the outcome shows at 64 px
# (docs/bench/grpo_engine.md).
DEFAULT_TASKS = ("window-open-v3", "door-open-v3", "faucet-open-v3", "plate-slide-v3", "sweep-into-v3")

# One instruction per Meta-World v3 task (all 50), so any set of them can be named.
INSTRUCTIONS = {
    "assembly-v3": "put the ring on the peg",
    "basketball-v3": "dunk the ball into the basket",
    "bin-picking-v3": "move the puck from one bin to the other",
    "box-close-v3": "put the lid on the box",
    "button-press-topdown-v3": "press the button down from above",
    "button-press-topdown-wall-v3": "press the button behind the wall down from above",
    "button-press-v3": "press the button",
    "button-press-wall-v3": "press the button behind the wall",
    "coffee-button-v3": "press the button on the coffee machine",
    "coffee-pull-v3": "pull the mug away from the coffee machine",
    "coffee-push-v3": "push the mug under the coffee machine",
    "dial-turn-v3": "turn the dial",
    "disassemble-v3": "take the ring off the peg",
    "door-close-v3": "close the door",
    "door-lock-v3": "turn the door lock",
    "door-open-v3": "open the door",
    "door-unlock-v3": "unlock the door",
    "drawer-close-v3": "close the drawer",
    "drawer-open-v3": "open the drawer",
    "faucet-close-v3": "turn the faucet off",
    "faucet-open-v3": "turn the faucet on",
    "hammer-v3": "hammer the nail into the wall",
    "hand-insert-v3": "put the puck into the hole",
    "handle-press-side-v3": "press the handle down from the side",
    "handle-press-v3": "press the handle down",
    "handle-pull-side-v3": "pull the handle up from the side",
    "handle-pull-v3": "pull the handle up",
    "lever-pull-v3": "pull the lever up",
    "peg-insert-side-v3": "insert the peg into the hole from the side",
    "peg-unplug-side-v3": "unplug the peg from the side",
    "pick-out-of-hole-v3": "pick the puck out of the hole",
    "pick-place-v3": "pick up the puck and place it at the goal marker",
    "pick-place-wall-v3": "pick up the puck and place it at the goal marker behind the wall",
    "plate-slide-back-side-v3": "slide the plate back out of the goal from the side",
    "plate-slide-back-v3": "slide the plate back out of the goal",
    "plate-slide-side-v3": "slide the plate into the goal from the side",
    "plate-slide-v3": "slide the plate into the goal",
    "push-back-v3": "pull the puck back to the goal marker",
    "push-v3": "push the puck to the goal marker",
    "push-wall-v3": "push the puck around the wall to the goal marker",
    "reach-v3": "move the gripper to the goal marker",
    "reach-wall-v3": "move the gripper over the wall to the goal marker",
    "shelf-place-v3": "place the puck on the shelf",
    "soccer-v3": "kick the ball into the goal",
    "stick-pull-v3": "pull the cup with the stick",
    "stick-push-v3": "push the cup with the stick",
    "sweep-into-v3": "sweep the puck into the hole",
    "sweep-v3": "sweep the puck off the table",
    "window-close-v3": "slide the window closed",
    "window-open-v3": "slide the window open",
}

# Meta-World: hand xyz deltas and a gripper effort (-1 opens, +1 closes), all in [-1, 1].
METAWORLD_ACTION_SPEC = ActionSpec(
    names=("dx", "dy", "dz", "gripper"),
    low=(-1.0, -1.0, -1.0, -1.0),
    high=(1.0, 1.0, 1.0, 1.0),
    gripper_index=3,
    gripper_open=-1.0,
    gripper_closed=1.0,
    control_hz=5.0,
)


@dataclass(frozen=True)
class CameraConfig:
    # A free camera close to the workspace: at 64 px the puck and goal are several pixels wide.
    lookat: tuple[float, float, float] = (0.0, 0.65, 0.05)
    azimuth: float = 145.0
    elevation: float = -30.0
    distance: float = 1.05


@dataclass(frozen=True)
class ShiftConfig:
    """The 'software simulator' shift. Identity values (1.0 / 0.0) reproduce reality."""

    tint: tuple[float, float, float] = (1.25, 0.9, 0.75)
    light_scale: float = 0.6
    camera_azimuth_offset: float = 8.0
    camera_elevation_offset: float = 5.0
    camera_distance_scale: float = 1.08
    friction_scale: float = 0.5
    mass_scale: float = 2.0
    action_gain: float = 0.8
    gripper_gain: float = 0.7


@dataclass(frozen=True)
class RealityConfig:
    tasks: tuple[str, ...] = DEFAULT_TASKS
    # Rendered frame size in pixels (64, 128 or 256).
    image_size: int = 64
    # Env steps per policy step.
    action_repeat: int = 3
    # Policy steps per episode.
    max_steps: int = 40
    camera: CameraConfig = field(default_factory=CameraConfig)
    # None = the unshifted reality; set = the shifted software simulator.
    shift: ShiftConfig | None = None

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from at_least(self, {"image_size": 8, "action_repeat": 1, "max_steps": 1})
        if not self.tasks:
            yield "tasks", "name at least one task"
        unknown = [name for name in self.tasks if name not in INSTRUCTIONS]
        if unknown:
            yield "tasks", f"unknown Meta-World task(s) {', '.join(unknown)}; known: {', '.join(sorted(INSTRUCTIONS))}"


def instruction_for(task_name: str) -> str:
    if task_name not in INSTRUCTIONS:
        raise ValueError(f"unknown Meta-World task {task_name!r}; known: {', '.join(sorted(INSTRUCTIONS))}")
    return INSTRUCTIONS[task_name]


def initial_states(task_name: str, split: str, count: int, start: int = 0) -> list[Task]:
    """Tasks for seeded initial states; 'train' and 'eval' seeds are disjoint."""
    if split not in ("train", "eval"):
        raise ValueError(f"split must be 'train' or 'eval', got {split!r}")
    # Seeds of training and evaluation initial states never overlap.
    offset = EVAL_SEED_OFFSET if split == "eval" else 0
    return [
        Task(instruction_for(task_name), env_state={"suite": "metaworld", "task": task_name, "seed": offset + i})
        for i in range(start, start + count)
    ]


def expert_policy(task_name: str):
    """Meta-World's scripted expert for a task."""
    import metaworld.policies as policies

    words = task_name.removesuffix("-v3").replace("peg-insert", "peg-insertion").split("-")  # its one irregular name
    class_name = "Sawyer" + "".join(w.capitalize() for w in words) + "V3Policy"
    if not hasattr(policies, class_name):
        raise ValueError(f"no scripted expert {class_name} for task {task_name!r}")
    return getattr(policies, class_name)()


class _TaskSim:
    """One Meta-World env and its camera; reused across resets.

    Sims of one task share a renderer: a MuJoCo renderer holds a GL context and copies of the
    meshes and textures (~250 MB here), and what differs between sims of a task (body, site and
    geom poses) is read from each sim's own MjData, which mj_forward filled from its own model.
    """

    def __init__(self, task_name: str, config: RealityConfig, renderer=None):
        import mujoco
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        key = f"{task_name}-goal-observable"
        if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
            raise ValueError(f"unknown Meta-World task {task_name!r}")
        self.task_name = task_name
        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key]()
        self.env._partially_observable = False
        self.expert = expert_policy(task_name)
        model = self.env.model
        # Shadows, MSAA and reflections off: ~10x faster offscreen rendering.
        model.light_castshadow[:] = 0
        model.vis.quality.offsamples = 0
        model.mat_reflectance[:] = 0
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_FREE
        cam = config.camera
        self.camera.lookat[:] = cam.lookat
        self.camera.azimuth, self.camera.elevation, self.camera.distance = cam.azimuth, cam.elevation, cam.distance
        if config.shift is not None:
            self._apply_shift(config.shift)
        self.renderer = renderer or mujoco.Renderer(model, config.image_size, config.image_size)
        self.owns_renderer = renderer is None
        self.obs: np.ndarray | None = None

    def _apply_shift(self, shift: ShiftConfig) -> None:
        model = self.env.model
        tint = np.asarray(shift.tint)
        model.geom_rgba[:, :3] = np.clip(model.geom_rgba[:, :3] * tint, 0, 1)
        model.mat_rgba[:, :3] = np.clip(model.mat_rgba[:, :3] * tint, 0, 1)
        model.light_diffuse[:] *= shift.light_scale
        model.light_ambient[:] *= shift.light_scale
        self.camera.azimuth += shift.camera_azimuth_offset
        self.camera.elevation += shift.camera_elevation_offset
        self.camera.distance *= shift.camera_distance_scale
        model.geom_friction[:, 0] *= shift.friction_scale
        model.body_mass[:] *= shift.mass_scale
        self.env.action_scale *= shift.action_gain
        # Position actuators: force = kp * ctrl - kp * qpos; scale both terms.
        model.actuator_gainprm[:, 0] *= shift.gripper_gain
        model.actuator_biasprm[:, 1] *= shift.gripper_gain

    def reset(self, seed: int) -> None:
        import mujoco

        env = self.env
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.seed(seed)
        self.obs, _ = env.reset()
        # Meta-World moves goal sites after its last forward pass; recompute derived positions
        # so the first frame depends on the seed only, not on the previous episode.
        mujoco.mj_forward(env.model, env.data)

    def render(self) -> np.ndarray:
        self.renderer.update_scene(self.env.data, camera=self.camera)
        return self.renderer.render().copy()

    def close(self) -> None:
        if self.owns_renderer:
            self.renderer.close()
        self.env.close()


class MetaWorldEnv:
    """A `BatchedEnv` over Meta-World tasks. Tasks in one batch may differ."""

    def __init__(self, config: RealityConfig = RealityConfig()):
        if config.image_size < 16:
            raise ValueError(f"image_size must be at least 16 pixels, got {config.image_size}")
        self.config = config
        self.action_spec = METAWORLD_ACTION_SPEC
        self.image_size = config.image_size
        self._sims: dict[str, list[_TaskSim]] = {}
        self._active: list[_TaskSim] = []
        self.success = np.zeros(0, dtype=bool)
        self.rewards = np.zeros(0, dtype=np.float32)
        self.steps = 0

    def _sim_for(self, task_name: str, slot: int) -> _TaskSim:
        pool = self._sims.setdefault(task_name, [])
        while len(pool) <= slot:
            pool.append(_TaskSim(task_name, self.config, pool[0].renderer if pool else None))
        return pool[slot]

    def reset(self, tasks: Sequence[Task]) -> np.ndarray:
        self._active = []
        used: dict[str, int] = {}
        for task in tasks:
            state = task.env_state
            if state.get("suite") != "metaworld" or "task" not in state or "seed" not in state:
                raise ValueError(f"task {task.instruction!r} has no Meta-World env_state (suite, task, seed): {state}")
            if task.history is not None:
                raise ValueError(f"task {task.instruction!r} restarts mid-episode (history of {len(task.history)} frames); "
                                 "Meta-World restores initial states only, a restarted task runs in the dream")
            slot = used.get(state["task"], 0)
            used[state["task"]] = slot + 1
            sim = self._sim_for(state["task"], slot)
            sim.reset(int(state["seed"]))
            self._active.append(sim)
        # Keep only the sims this batch can use (the first of a pool owns the shared renderer).
        for name, pool in self._sims.items():
            keep = max(used.get(name, 0), 1)
            for sim in pool[keep:]:
                sim.close()
            del pool[keep:]
        self.success = np.zeros(len(tasks), dtype=bool)
        self.rewards = np.zeros(len(tasks), dtype=np.float32)
        self.steps = 0
        return self.render()

    def render(self) -> np.ndarray:
        return np.stack([sim.render() for sim in self._active])

    def step(self, actions: np.ndarray) -> np.ndarray:
        actions = self.action_spec.validate(actions)
        if actions.shape != (len(self._active), self.action_spec.dim):
            raise ValueError(f"actions: expected shape ({len(self._active)}, {self.action_spec.dim}), got {actions.shape}")
        actions = self.action_spec.clip(actions)
        for i, sim in enumerate(self._active):
            for _ in range(self.config.action_repeat):
                sim.obs, reward, _, _, info = sim.env.step(actions[i])
                self.success[i] |= bool(info["success"])
            self.rewards[i] = float(reward)
        self.steps += 1
        return self.render()

    def hand_positions(self) -> np.ndarray:
        """[B, 3] end-effector positions (metres) of the active rollouts, for analysis."""
        return np.stack([sim.obs[:3] for sim in self._active]).astype(np.float32)

    def expert_actions(self) -> np.ndarray:
        """The scripted expert's action for each rollout's current state."""
        return np.stack([np.clip(sim.expert.get_action(sim.obs), -1, 1) for sim in self._active]).astype(np.float32)

    def close(self) -> None:
        for pool in self._sims.values():
            for sim in pool:
                sim.close()
        self._sims.clear()
        self._active = []
