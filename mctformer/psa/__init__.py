"""PSA (Ahn & Kwak, CVPR 2018) as MCTformer uses it: confident labels via CRF, AffinityNet, the random walk.

- :mod:`.labels`: confident labels. A dense CRF on [bg, maps] with bg = (1 - max)^alpha, once
  with a low alpha (strong background: only confident foreground survives, "la") and once
  with a high alpha (weak background: only confident background survives, "ha"). The label
  is la's class where la is foreground, 255 where la is background, then 0 wherever ha is
  background (ha's background wins, as in the reference).
- :mod:`.walk`: the random walk. The affinity of pixel pairs within a radius on a feature grid
  (plus self-affinity 1) raised to beta, column-normalised into a transition matrix T; seed
  scores propagated by T^(2^logt). T is sparse, so the scores are multiplied by T 2^logt
  times instead of squaring a dense T logt times as the reference does; both give the same
  scores. Any affinity source walks through the same function (AffinityNet's features, or
  colour for the ablation).
- :mod:`.geometry`: seeds on the walk's grid (background = a constant, average-pooled by the
  stride) and back from it (upsampled, cropped, argmax).
- :mod:`.drivers`: the stages' loops over a split (files in, files out).

Pixel pairs and AffinityNet's labels and loss are in :mod:`mctformer.affinity`.
"""
