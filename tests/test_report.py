import numpy as np

from mctformer.report import activation_repairs


def test_activation_repairs_count_what_the_mask_fixes_of_the_seed():
    ground_truth = np.array([[0, 0, 1], [0, 1, 1], [255, 1, 0]])
    seed = np.array([[0, 2, 0], [0, 1, 0], [0, 0, 1]])
    mask = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1]])
    # under: object pixels the seed leaves to the background, (0,2) (1,2) (2,1); the mask gets (0,2) and (1,2) right
    # over: background the seed activates, (0,1) and (2,2); the mask clears (0,1) only; the 255 pixel never counts
    assert activation_repairs(ground_truth, seed, mask) == (2, 1)
    assert activation_repairs(ground_truth, seed, seed) == (0, 0)
    assert activation_repairs(ground_truth, seed, np.where(ground_truth == 255, 0, ground_truth)) == (3, 2)
