"""Networks shared by every algorithm, in the QT-Opt shape (design section 5).

Images enter as uint8 N x H x W x 3 (what the camera and the store hold) and are
normalised inside the module, so the exported ONNX graph takes raw camera frames and the
runtime needs no preprocessing of its own. Permuting NHWC to NCHW yields a channels_last
tensor for free, which is the fast layout for convolutions on CPU.

The trunk encodes (image, goal) once; `head` scores any number of candidate actions
against that encoding, which is what makes CEM cheap: the convolutions run once per
state, only the small MLP runs once per sampled action.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from robot_app.spec import ACTION_DIM, IMAGE_SIZE, proprio_width


@dataclass(frozen=True)
class NetworkConfig:
    image_size: int = IMAGE_SIZE  # square camera frames, 64 or 128
    channels: tuple[int, ...] = (32, 64, 64, 64)  # conv widths, each a stride-2 3x3 conv
    feature_dim: int = 256  # state-goal embedding width
    head_hidden: int = 256  # width of the action-conditioned head
    encoder: str = "flat"  # "flat": flatten + linear (QT-Opt); "keypoints": spatial softmax (see StateGoalEncoder)
    gripper_input: bool = True  # False: the measured gripper state is ignored (see gripper_feature)
    # True: the proprio input is (gripper, end effector height / 0.25 m), QT-Opt's state
    # (robot_app.spec.RobotState); the store needs ee_position and the card says so.
    height_input: bool = False

    @property
    def proprio_dim(self) -> int:
        """Width of the proprio input ("gripper" in the ONNX contract): the gripper, and the height."""
        return proprio_width(self.height_input)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkConfig:
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def gripper_feature(gripper: torch.Tensor, config: NetworkConfig) -> torch.Tensor:
    """The measured gripper state as the networks see it: as is, or zeroed.

    The logged gripper command equals the measured gripper state on most steps, so a
    network given the state can fit the data by copying it and never learn when to close
    or open (the "copycat" failure of behaviour cloning from observation histories, de Haan
    et al. 2019, Wen et al. 2020). `robot-app eval --expert` measured exactly that: on 20
    tasks a family, AM made 0-1 of the expert's 140 gripper switches on time, GCBC at most
    19 after 30000 updates, random actions 40. The image shows the fingers anyway. Zeroing (not removing) keeps the input in the exported graph, so the ONNX
    contract (image, goal, gripper, actions) is the same either way.
    """
    if config.gripper_input:
        return gripper
    keep = torch.ones(gripper.shape[-1], dtype=gripper.dtype, device=gripper.device)
    keep[0] = 0.0  # the gripper column; the height, if any, stays
    return gripper * keep


def to_float_nchw(images_nhwc: torch.Tensor) -> torch.Tensor:
    """uint8 (or float 0..255) NHWC -> float NCHW in [0, 1], channels_last in memory."""
    return images_nhwc.permute(0, 3, 1, 2).float() / 255.0


ENCODERS = ("flat", "keypoints")


class SpatialSoftmax(nn.Module):
    """(B, C, H, W) feature maps -> (B, 2C): per channel, the softmax-weighted mean (x, y) in [-1, 1].

    Each channel becomes a keypoint: where in the image its feature fires. Position is what
    manipulation needs (where the object is relative to the gripper), and a keypoint states
    it in two numbers that a few hundred frames can fit, where a flattened map asks the
    linear layer to learn position pixel by pixel (Levine et al. 2016; robomimic's default).
    """

    def __init__(self, height: int, width: int):
        super().__init__()
        ys, xs = torch.meshgrid(torch.linspace(-1.0, 1.0, height), torch.linspace(-1.0, 1.0, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], dim=1), persistent=False)  # (HW, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        attention = torch.softmax(x.reshape(b, c, h * w).float(), dim=-1)
        return (attention @ self.grid).reshape(b, 2 * c)


class StateGoalEncoder(nn.Module):
    """Conv trunk over the current and goal images stacked on channels (6 in).

    "flat" (QT-Opt's shape): every conv halves the size, the last map is flattened into a
    linear layer. "keypoints": only the first two convs halve it (16x16 maps from 64x64),
    and a spatial softmax turns each channel of the last map into an image position; about
    2.7x the trunk's arithmetic at the default widths.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        if config.encoder not in ENCODERS:
            raise ValueError(f"network.encoder={config.encoder!r}: expected one of {', '.join(ENCODERS)}")
        keypoints = config.encoder == "keypoints"
        layers, in_ch, side = [], 6, config.image_size
        for i, out_ch in enumerate(config.channels):
            stride = 1 if keypoints and i >= 2 else 2
            layers += [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1), nn.ReLU(inplace=True)]
            in_ch, side = out_ch, side // stride
        self.convs = nn.Sequential(*layers)
        if keypoints:
            self.project = nn.Sequential(SpatialSoftmax(side, side), nn.Linear(2 * in_ch, config.feature_dim), nn.ReLU())
        else:
            self.project = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * side * side, config.feature_dim), nn.ReLU())
        self.channels_last = True  # see set_channels_last; a runtime layout choice, not part of the architecture

    def forward(self, image: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        # Stack while still uint8 and convert once, straight to the autocast dtype when
        # training under bf16: one pass over the batch instead of four (float, divide,
        # concatenate, cast), the same values as normalising each image first.
        x = torch.cat([image, goal], dim=3).permute(0, 3, 1, 2)
        kind = x.device.type
        dtype = torch.get_autocast_dtype(kind) if torch.is_autocast_enabled(kind) else torch.float32
        x = x.to(dtype) / 255.0
        if not self.channels_last:
            x = x.contiguous()
        return self.project(self.convs(x))


def set_channels_last(module: nn.Module, enabled: bool) -> nn.Module:
    """Choose the conv layout of every encoder in `module`: channels_last (fast on CPU) or plain NCHW.

    NCHW exists as the plain eager baseline the training benchmark compares against; the
    parameters are the same either way, so checkpoints and exports do not depend on it.
    """
    fmt = torch.channels_last if enabled else torch.contiguous_format
    for m in module.modules():
        if isinstance(m, StateGoalEncoder):
            m.channels_last = enabled
            m.convs.to(memory_format=fmt)
    return module


class QNetwork(nn.Module):
    """Q(s, a, g) in (0, 1): probability-like value of reaching goal image g."""

    def __init__(self, config: NetworkConfig | None = None):
        super().__init__()
        self.config = config or NetworkConfig()
        c = self.config
        self.encoder = StateGoalEncoder(c)
        self.action_embed = nn.Sequential(nn.Linear(ACTION_DIM + c.proprio_dim, c.feature_dim), nn.ReLU(), nn.Linear(c.feature_dim, c.feature_dim))
        self.head = nn.Sequential(
            nn.Linear(c.feature_dim, c.head_hidden), nn.ReLU(), nn.Linear(c.head_hidden, c.head_hidden), nn.ReLU(),
            nn.Linear(c.head_hidden, 1),
        )

    def encode(self, image: torch.Tensor, goal: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) embedding of the state-goal pair."""
        return self.encoder(image, goal)

    def head_logits(self, features: torch.Tensor, gripper: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Logits for N candidate actions per state: features (B,F), proprio (B,P), actions (B,N,5) -> (B,N)."""
        n, p = actions.shape[1], self.config.proprio_dim
        grip = gripper_feature(gripper, self.config).reshape(-1, 1, p).expand(-1, n, p)
        z = features.unsqueeze(1) + self.action_embed(torch.cat([actions, grip], dim=-1))
        return self.head(torch.relu(z)).squeeze(-1)

    def logits(self, image, goal, gripper, actions) -> torch.Tensor:
        return self.head_logits(self.encode(image, goal), gripper, actions)

    def forward(self, image, goal, gripper, actions) -> torch.Tensor:
        """The ONNX contract: uint8 image/goal (B,H,W,3), gripper (B,P) proprio, actions (B,N,5) -> q (B,N)."""
        return torch.sigmoid(self.logits(image, goal, gripper, actions))
