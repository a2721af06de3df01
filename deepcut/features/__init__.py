"""Step 2 of the flow: an image becomes patch features.

Loading and resizing an image (:mod:`.image`), the backbone's batched pass with its embedding cache and
facets (:class:`.store.FeatureStore` -> :class:`.store.PatchFeatures`, ``(N, D)`` on a ``(h, w)`` grid), and
the log-binned descriptors (:mod:`.descriptors`).
"""
