"""IRN (Ahn, Cho & Kwak, CVPR 2019) as a second refinement beside PSA: inter-pixel relations from class boundaries.

- :mod:`.labels`: confident labels from the seeds. Confident foreground where the seed map exceeds
  ``conf_fg_thres``, confident background where every map is at most ``conf_bg_thres``, each
  refined by a dense CRF on labels (unary from a label map, as the authors' crf_inference_label),
  255 between.
- :mod:`.paths`: for every pair of stride-4 grid cells within a radius, the cells along the line
  between them (the authors' PathIndex); the pair's affinity is 1 - the largest boundary value on
  that path (their edge_to_affinity), computed for all pairs as one shifted slice per path cell;
  and the pair losses that train the boundary network from the confident labels.
- :mod:`.walk`: the random walk on boundary affinities (affinity^beta, 2^exp_times steps) through
  the same sparse transition matrix and propagation as PSA (mctformer.psa.walk), seeds damped by
  (1 - boundary), then upsampled, normalised by their maximum and compared with a constant
  background score (``sem_seg_bg_thres``).
- :mod:`.drivers`: the stages' loops over a split (files in, files out).

Pairs are those of mctformer.affinity (the same half-disc offsets, in the same order): the authors'
training pairs are its ``reference`` source window, their walk's are ``all`` (they pad the boundary map
by the radius with 1, which gives every pair inside the image and nothing across its border).
The displacement branch (instance segmentation) is not built; the semantic masks need only the boundaries.
"""
