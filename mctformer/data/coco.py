"""Reader of an MS COCO 2014 root in the pipeline's image/mask/list layout.

    <root>/train2014/COCO_train2014_<n>.jpg, <root>/val2014/COCO_val2014_<n>.jpg   (official archives)
    <root>/SegmentationClass/<id>.png     class-index masks (0 = background, 1..80, 255 = ignore)
    <root>/ImageSets/Segmentation/<split>.txt
"""

from __future__ import annotations

from pathlib import Path

from .voc import VOCLayout

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush",
)


class COCOLayout(VOCLayout):
    """Like VOC, but images sit in the official ``train2014``/``val2014`` folders named by their id."""

    mask_dirs = ("SegmentationClass",)

    def image_path(self, image_id: str) -> Path:
        for folder in ("train2014", "val2014"):
            if folder in image_id:
                return self.root / folder / f"{image_id}{self.image_suffix}"
        return self.root / "JPEGImages" / f"{image_id}{self.image_suffix}"
