"""The reward judge as a ROS 2 node: serves `/gymnast/judge` over a recorded or dreamed video."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from rclpy.node import Node

from gymnast_core.names import JUDGE_SERVICE, SHIPPED_JUDGE
from gymnast_core.ros_msgs import MessageError, image_to_array
from gymnast_core.ros_node import declare_config, spin_node
from gymnast_interfaces.srv import Judge as JudgeSrv
from gymnast_reward.judges import JudgeConfig, make_judge


@dataclass(frozen=True)
class RewardNodeConfig:
    judge: JudgeConfig = field(default_factory=lambda: replace(JudgeConfig(), path=SHIPPED_JUDGE))


class RewardNode(Node):
    def __init__(self) -> None:
        super().__init__("reward")
        self.config = declare_config(self, RewardNodeConfig())
        if self.config.judge.backend == "oracle":
            raise ValueError("the oracle judge reads an evaluation environment's ground truth; "
                             "the reward node serves learned, vlm or api")
        self.judge = make_judge(self.config.judge)
        self.create_service(JudgeSrv, JUDGE_SERVICE, self.on_judge)
        self.get_logger().info(f"judging with the {self.judge.name} judge")

    def on_judge(self, request: JudgeSrv.Request, response: JudgeSrv.Response) -> JudgeSrv.Response:
        response.judge = self.judge.name
        try:
            if not request.frames:
                raise MessageError("the video has no frames")
            if not request.instruction.strip():
                raise MessageError("the instruction is empty")
            frames = [image_to_array(image) for image in request.frames]
            if len({f.shape for f in frames}) > 1:
                raise MessageError(f"frames differ in size: {sorted({f.shape[:2] for f in frames})}")
            verdict = self.judge.judge(np.stack(frames)[None], [request.instruction])
        except (MessageError, ValueError) as exc:
            self.get_logger().error(f"judge request rejected: {exc}")
            response.verdict, response.score, response.rationale = JudgeSrv.Response.UNKNOWN, float("nan"), str(exc)
            return response
        known = bool(verdict.known[0])
        response.verdict = (JudgeSrv.Response.UNKNOWN if not known else
                            JudgeSrv.Response.SUCCESS if verdict.success[0] else JudgeSrv.Response.FAILURE)
        response.score = float(verdict.scores[0])
        response.rationale = verdict.rationales[0]
        return response


def main(args: list[str] | None = None) -> None:
    spin_node(RewardNode, args)


if __name__ == "__main__":
    main()
