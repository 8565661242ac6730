"""Datasets: readers of VOC/COCO-layout roots, the synthetic generator, labels, transforms."""
