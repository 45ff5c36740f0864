"""ResNet-RS models, parameter / FLOP counting and timm weight compatibility."""

from .config import DEPTH_BLOCKS, DROP_PATH_SCHEDULES, MODELS, STEMS, ResNetRSConfig, from_model_cfg
from .counting import count_flops, count_params, flops_by_module, model_cost
from .resnet_rs import (
    MODEL_CFG_KEYS,
    Bottleneck,
    DropPath,
    ResNetRS,
    build_model,
    drop_path_rates,
    make_divisible,
    resnet_rs,
    scale_width,
    validate_model_cfg,
)
from .timm_compat import load_timm_state_dict, timm_key_to_rsscale

__all__ = [
    "DEPTH_BLOCKS",
    "DROP_PATH_SCHEDULES",
    "MODEL_CFG_KEYS",
    "STEMS",
    "Bottleneck",
    "DropPath",
    "MODELS",
    "ResNetRS",
    "ResNetRSConfig",
    "from_model_cfg",
    "build_model",
    "count_flops",
    "count_params",
    "flops_by_module",
    "drop_path_rates",
    "load_timm_state_dict",
    "make_divisible",
    "model_cost",
    "resnet_rs",
    "scale_width",
    "timm_key_to_rsscale",
    "validate_model_cfg",
]
