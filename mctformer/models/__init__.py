"""Networks: MCTformer V1/V2 on timm's VisionTransformer (more arrive with PSA and DeepLab)."""

from .mctformer import MCTformer, MCTformerOutput, create_mctformer, model_summary

__all__ = ["MCTformer", "MCTformerOutput", "create_mctformer", "model_summary"]
